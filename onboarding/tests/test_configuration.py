import pytest
from django.core.exceptions import ValidationError

from onboarding.models import LoginConfiguration


def configuration(**overrides) -> LoginConfiguration:
    fields = {
        "name": "Ads",
        "config_id": "cfg-1",
        "token_type": "system_user",
        "variant": "standard",
        "permissions": ["ads_management", "business_management"],
        "asset_types": ["ad_account"],
        "token_expiry": "never",
    }
    return LoginConfiguration(**(fields | overrides))


def errors_of(config: LoginConfiguration) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as excinfo:
        config.full_clean(validate_unique=False, validate_constraints=False)
    return excinfo.value.message_dict


def test_a_system_user_configuration_with_supported_permissions_is_valid():
    configuration().full_clean(validate_unique=False, validate_constraints=False)


def test_clean_sorts_and_deduplicates_permissions():
    config = configuration(permissions=["ads_read", " ads_read", "ads_management"])
    config.full_clean(validate_unique=False, validate_constraints=False)
    assert config.permissions == ["ads_management", "ads_read"]


def test_an_unsupported_permission_is_named():
    errors = errors_of(configuration(permissions=["ads_read", "user_posts"]))
    assert errors["permissions"] == ["Not supported by Facebook Login for Business: user_posts."]


def test_no_permission_at_all_is_refused():
    messages = errors_of(configuration(permissions=[]))["permissions"]
    assert "A configuration must ask for at least one permission." in messages


def test_email_is_refused_for_system_user_tokens():
    errors = errors_of(configuration(permissions=["ads_read", "email"]))
    assert "only for user access tokens" in errors["permissions"][0]


def test_public_profile_alone_is_refused_for_user_tokens():
    errors = errors_of(configuration(token_type="user", permissions=["public_profile", "email"]))
    assert "cannot be asked for alone" in errors["permissions"][0]


def test_email_with_another_permission_is_fine_for_user_tokens():
    configuration(token_type="user", permissions=["email", "pages_show_list"], asset_types=["page"]).full_clean(
        validate_unique=False, validate_constraints=False
    )


def test_embedded_signup_needs_system_user_tokens_and_both_whatsapp_permissions():
    config = configuration(
        variant="whatsapp_embedded_signup", token_type="user", permissions=["whatsapp_business_management"]
    )
    errors = errors_of(config)
    assert errors["token_type"] == ["WhatsApp Embedded Signup needs system-user access tokens."]
    assert "missing: whatsapp_business_messaging" in errors["permissions"][0]


def test_embedded_signup_without_sixty_day_expiry_is_valid_but_warned():
    config = configuration(
        variant="whatsapp_embedded_signup",
        permissions=["whatsapp_business_management", "whatsapp_business_messaging"],
        asset_types=["whatsapp_business_account"],
    )
    config.full_clean(validate_unique=False, validate_constraints=False)
    assert config.warnings() == ["Meta recommends a 60-day token expiry for WhatsApp Embedded Signup configurations."]
    config.token_expiry = "60_days"
    assert config.warnings() == []


def test_the_instagram_variant_is_user_token_only():
    errors = errors_of(configuration(variant="instagram", permissions=["instagram_basic"]))
    assert errors["token_type"] == ["The Instagram onboarding variant needs user access tokens."]


def test_an_unknown_asset_type_is_named():
    assert "Unknown asset types: planet" in errors_of(configuration(asset_types=["planet"]))["asset_types"][0]


def test_sixty_day_expiry_is_for_system_user_tokens_only():
    errors = errors_of(configuration(token_type="user", permissions=["ads_read"], token_expiry="60_days"))
    assert "applies to system-user tokens" in errors["token_expiry"][0]


def test_permissions_that_are_not_a_list_are_refused():
    assert errors_of(configuration(permissions="ads_read"))["permissions"] == [
        "Permissions must be a list of permission names."
    ]


def test_dialog_extras_follow_the_variant():
    assert configuration().dialog_extras() is None
    assert configuration(variant="instagram").dialog_extras() == {"setup": {"channel": "IG_API_ONBOARDING"}}
    assert configuration(variant="whatsapp_embedded_signup").dialog_extras()["sessionInfoVersion"] == "3"
