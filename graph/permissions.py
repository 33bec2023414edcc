"""Meta's static knowledge about permissions (docs/meta.md), as plain data.

What staff edit about permissions (access level, App Review state) lives in the
verification app; this module is what Meta publishes.
"""

from __future__ import annotations


def gettext_noop(message: str) -> str:
    """Marks a string for translation without importing Django: ``makemessages`` knows this name.

    The pages that show these strings translate them (``gettext(describe(name))``).
    """
    return message


USER = "user"
SYSTEM_USER = "system_user"

# Facebook Login for Business: permissions a configuration may ask for.
FLFB_SUPPORTED: frozenset[str] = frozenset(
    {
        "ads_management", "ads_read", "business_management", "catalog_management", "email",
        "instagram_basic", "instagram_content_publish", "instagram_manage_comments",
        "instagram_manage_insights", "instagram_manage_messages", "instagram_shopping_tag_products",
        "leads_retrieval", "manage_fundraisers", "pages_manage_cta", "page_events", "pages_manage_ads",
        "pages_manage_engagement", "pages_manage_instant_articles", "pages_manage_metadata",
        "pages_manage_posts", "pages_messaging", "pages_read_engagement", "pages_read_user_content",
        "pages_show_list", "private_computation_access", "public_profile", "publish_video",
        "read_insights", "read_audience_network_insights", "whatsapp_business_management",
        "whatsapp_business_messaging",
    }
)
# Granted automatically to user tokens, never to system users, and never enough alone.
USER_ONLY: frozenset[str] = frozenset({"email", "public_profile"})


def supported_permissions(token_type: str) -> frozenset[str]:
    if token_type == SYSTEM_USER:
        return FLFB_SUPPORTED - USER_ONLY
    return FLFB_SUPPORTED


# Tech Provider access verification gates these for people with no role on the app.
TECH_PROVIDER_GATED: frozenset[str] = frozenset(
    {
        "ads_management", "ads_read", "attribution_read", "business_management", "catalog_management",
        "email", "instagram_basic", "instagram_content_publish", "instagram_manage_insights",
        "leads_retrieval", "page_events", "pages_manage_ads", "pages_manage_cta", "pages_manage_engagement",
        "pages_manage_instant_articles", "pages_manage_posts", "pages_read_engagement",
        "pages_read_user_content", "pages_show_list", "public_profile", "publish_to_groups",
        "publish_video", "read_insights",
    }
)

WHATSAPP_EMBEDDED_SIGNUP_REQUIRED: frozenset[str] = frozenset(
    {"whatsapp_business_management", "whatsapp_business_messaging"}
)

# What each permission lets us do, in words a client's staff understand.
DESCRIPTIONS: dict[str, str] = {
    "ads_management": gettext_noop("Create and manage ads and campaigns in the ad accounts you choose."),
    "ads_read": gettext_noop("Read ad performance and settings in the ad accounts you choose."),
    "attribution_read": gettext_noop("Read attribution data for your ads."),
    "business_management": gettext_noop("Read and manage your business portfolio's assets and settings."),
    "catalog_management": gettext_noop("Create and update products in the catalogs you choose."),
    "email": gettext_noop("See the email address of the person who connects."),
    "instagram_basic": gettext_noop("Read your Instagram account's profile and media."),
    "instagram_content_publish": gettext_noop("Publish posts to your Instagram account."),
    "instagram_manage_comments": gettext_noop("Read, reply to and moderate comments on your Instagram posts."),
    "instagram_manage_insights": gettext_noop("Read insights for your Instagram account."),
    "instagram_manage_messages": gettext_noop("Read and send Instagram direct messages."),
    "instagram_shopping_tag_products": gettext_noop("Tag products from your catalog in Instagram posts."),
    "leads_retrieval": gettext_noop("Download leads collected by your lead ads."),
    "manage_fundraisers": gettext_noop("Create and manage fundraisers."),
    "pages_manage_cta": gettext_noop("Manage the call-to-action buttons on your Pages."),
    "page_events": gettext_noop("Send events from your Pages to Meta for measurement."),
    "pages_manage_ads": gettext_noop("Manage ads linked to your Pages."),
    "pages_manage_engagement": gettext_noop("Manage comments and reactions on your Pages."),
    "pages_manage_instant_articles": gettext_noop("Manage Instant Articles for your Pages."),
    "pages_manage_metadata": gettext_noop("Manage Page settings and subscribe to Page webhooks."),
    "pages_manage_posts": gettext_noop("Create, edit and delete posts on your Pages."),
    "pages_messaging": gettext_noop("Send and receive Messenger messages for your Pages."),
    "pages_read_engagement": gettext_noop("Read posts, followers and engagement on your Pages."),
    "pages_read_user_content": gettext_noop("Read content people post on your Pages."),
    "pages_show_list": gettext_noop("See the list of Pages you manage."),
    "private_computation_access": gettext_noop("Use Meta's private computation products with your data."),
    "public_profile": gettext_noop("See the name and profile picture of the person who connects."),
    "publish_to_groups": gettext_noop("Post to groups on your behalf."),
    "publish_video": gettext_noop("Publish live and recorded videos to your Pages."),
    "read_insights": gettext_noop("Read insights for your Pages and apps."),
    "read_audience_network_insights": gettext_noop("Read Audience Network insights."),
    "whatsapp_business_management": gettext_noop("Manage your WhatsApp Business account, phone numbers and templates."),
    "whatsapp_business_messaging": gettext_noop("Send and receive WhatsApp messages for your business."),
}

# Asset types a configuration may ask the person to select, as Meta names them.
ASSET_TYPES: dict[str, str] = {
    "page": gettext_noop("Facebook Pages"),
    "ad_account": gettext_noop("Ad accounts"),
    "business": gettext_noop("Business portfolios"),
    "whatsapp_business_account": gettext_noop("WhatsApp Business accounts"),
    "instagram_account": gettext_noop("Instagram accounts"),
    "catalog": gettext_noop("Catalogs"),
    "pixel": gettext_noop("Pixels and datasets"),
}


def describe(permission: str) -> str:
    return DESCRIPTIONS.get(permission, permission.replace("_", " ").capitalize() + ".")


# Which kind of asset a permission is granted on (Meta's granular_scopes target ids are of that
# kind). Longest prefix first: the first match wins.
ASSET_KIND_BY_SCOPE_PREFIX: tuple[tuple[str, str], ...] = (
    ("whatsapp_", "whatsapp_business_account"),
    ("instagram_", "instagram_account"),
    ("pages_", "page"),
    ("page_", "page"),
    ("read_insights", "page"),
    ("publish_video", "page"),
    ("leads_retrieval", "page"),
    ("ads_", "ad_account"),
    ("attribution_read", "ad_account"),
    ("catalog_", "catalog"),
    ("business_management", "business"),
)


def asset_kind_for_scope(scope: str) -> str | None:
    for prefix, kind in ASSET_KIND_BY_SCOPE_PREFIX:
        if scope.startswith(prefix):
            return kind
    return None


def readable_kinds(scopes) -> set[str]:
    """The asset kinds a token holding these permissions may read (pixels go with ad accounts)."""
    kinds = {kind for kind in map(asset_kind_for_scope, scopes) if kind}
    if "ad_account" in kinds:
        kinds.add("pixel")
    return kinds
