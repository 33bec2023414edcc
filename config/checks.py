"""Production refuses to start with the demo's unsafe defaults."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=False)
def production_settings_are_safe(app_configs=None, **kwargs) -> list[Error]:
    if not getattr(settings, "PRODUCTION", False):
        return []
    errors = []
    if settings.SECRET_KEY == settings.DEMO_SECRET_KEY or len(settings.SECRET_KEY) < 32:
        errors.append(
            Error(
                "DJANGO_SECRET_KEY is the demo default (or shorter than 32 characters).",
                hint="Set DJANGO_SECRET_KEY to a long random value.",
                id="portal.E001",
            )
        )
    if settings.FIELD_ENCRYPTION_KEY == settings.DEMO_FIELD_ENCRYPTION_KEY or len(settings.FIELD_ENCRYPTION_KEY) < 32:
        errors.append(
            Error(
                "FIELD_ENCRYPTION_KEY is the demo default (or shorter than 32 characters).",
                hint="Set FIELD_ENCRYPTION_KEY to a long random value, kept apart from DJANGO_SECRET_KEY.",
                id="portal.E002",
            )
        )
    if settings.DEBUG:
        errors.append(Error("DEBUG is on in production.", hint="Set DJANGO_DEBUG=false.", id="portal.E003"))
    if settings.META_SIMULATOR:
        errors.append(
            Error(
                "The Meta simulator is on in production.",
                hint="Set META_SIMULATOR=false; the simulator is for the demo and tests only.",
                id="portal.E004",
            )
        )
    if settings.FIELD_ENCRYPTION_KEY == settings.SECRET_KEY:
        errors.append(
            Error(
                "FIELD_ENCRYPTION_KEY equals DJANGO_SECRET_KEY.",
                hint="Use a separate key so SECRET_KEY can be rotated without losing tokens.",
                id="portal.E005",
            )
        )
    if settings.META_APP_SECRET in ("", "demo-app-secret"):
        errors.append(Error("META_APP_SECRET is not set.", hint="Set META_APP_SECRET.", id="portal.E006"))
    return errors
