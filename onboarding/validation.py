"""Meta's rules for a Facebook Login for Business configuration (docs/meta.md).

Each broken rule is reported against the field it concerns, with a message that
names the rule, so staff can fix the configuration in Meta's App Dashboard too.
"""

from __future__ import annotations

from dataclasses import dataclass

from graph import permissions as meta

SYSTEM_USER = "system_user"
USER = "user"
WHATSAPP_EMBEDDED_SIGNUP = "whatsapp_embedded_signup"
INSTAGRAM = "instagram"
SIXTY_DAYS = "60_days"


@dataclass(frozen=True)
class Problem:
    field: str
    code: str
    message: str


def configuration_problems(
    *, token_type: str, variant: str, permissions, asset_types, token_expiry: str
) -> list[Problem]:
    """Every rule this configuration breaks (empty list: valid)."""
    problems: list[Problem] = []
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        return [Problem("permissions", "not_a_list", "Permissions must be a list of permission names.")]
    if not isinstance(asset_types, list) or not all(isinstance(a, str) for a in asset_types):
        problems.append(Problem("asset_types", "not_a_list", "Asset types must be a list of asset type names."))
        asset_types = []
    asked = set(permissions)

    if not asked:
        problems.append(Problem("permissions", "empty", "A configuration must ask for at least one permission."))

    unknown = sorted(asked - meta.FLFB_SUPPORTED)
    if unknown:
        problems.append(
            Problem(
                "permissions",
                "unsupported",
                "Not supported by Facebook Login for Business: " + ", ".join(unknown) + ".",
            )
        )

    user_only = sorted(asked & meta.USER_ONLY)
    if token_type == SYSTEM_USER and user_only:
        problems.append(
            Problem(
                "permissions",
                "user_only_permission",
                "email and public_profile are only for user access tokens, not system-user tokens "
                f"(remove {', '.join(user_only)}).",
            )
        )
    elif asked and asked <= meta.USER_ONLY:
        problems.append(
            Problem(
                "permissions",
                "user_only_alone",
                "email and public_profile cannot be asked for alone: add at least one other permission.",
            )
        )

    if variant == WHATSAPP_EMBEDDED_SIGNUP:
        if token_type != SYSTEM_USER:
            problems.append(
                Problem(
                    "token_type",
                    "embedded_signup_needs_system_user",
                    "WhatsApp Embedded Signup needs system-user access tokens.",
                )
            )
        missing = sorted(meta.WHATSAPP_EMBEDDED_SIGNUP_REQUIRED - asked)
        if missing:
            problems.append(
                Problem(
                    "permissions",
                    "embedded_signup_permissions",
                    "WhatsApp Embedded Signup needs whatsapp_business_management and "
                    f"whatsapp_business_messaging (missing: {', '.join(missing)}).",
                )
            )
    if variant == INSTAGRAM and token_type != USER:
        problems.append(
            Problem("token_type", "instagram_needs_user", "The Instagram onboarding variant needs user access tokens.")
        )

    unknown_assets = sorted(set(asset_types) - set(meta.ASSET_TYPES))
    if unknown_assets:
        problems.append(
            Problem(
                "asset_types",
                "unknown_asset_type",
                "Unknown asset types: " + ", ".join(unknown_assets) + f" (known: {', '.join(meta.ASSET_TYPES)}).",
            )
        )
    if token_expiry == SIXTY_DAYS and token_type != SYSTEM_USER:
        problems.append(
            Problem(
                "token_expiry",
                "expiry_for_system_user_only",
                "The 60-day expiry setting applies to system-user tokens; user tokens expire on their own.",
            )
        )
    return problems


def configuration_warnings(*, token_type: str, variant: str, token_expiry: str) -> list[str]:
    """Advice that doesn't block saving."""
    warnings = []
    if variant == WHATSAPP_EMBEDDED_SIGNUP and token_expiry != SIXTY_DAYS:
        warnings.append("Meta recommends a 60-day token expiry for WhatsApp Embedded Signup configurations.")
    return warnings
