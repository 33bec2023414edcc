from django.conf import settings


def portal(request) -> dict:
    return {
        "PORTAL_NAME": settings.PORTAL_NAME,
        "SUPPORT_EMAIL": settings.SUPPORT_EMAIL,
        "HELP_CENTER_URL": settings.HELP_CENTER_URL,
    }
