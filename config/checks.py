"""Production refuses to start with the demo's unsafe defaults.

The checks are Django system checks, so `manage.py` stops on them; `refuse_unsafe_production()`
runs the same checks where Django does not: when gunicorn loads `config.wsgi` and when a
Celery worker or beat starts (`config.celery`). Every error names the variable to set.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

# Backends that accept a message and deliver it nowhere: reminders would be marked sent.
UNDELIVERING_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend": "console",
    "django.core.mail.backends.locmem.EmailBackend": "locmem",
    "django.core.mail.backends.dummy.EmailBackend": "dummy",
    "django.core.mail.backends.filebased.EmailBackend": "file",
}
# Brokers that live on one machine (or in one process): a worker elsewhere never sees the tasks.
SINGLE_MACHINE_BROKERS = ("filesystem://", "memory://")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "[::1]"}  # noqa: S104 (names, not a bind)


def _error(message: str, hint: str, number: int) -> Error:
    return Error(message, hint=hint, id=f"portal.E{number:03d}")


def _is_local(host: str) -> bool:
    host = (host or "").lower()
    return host in LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def _base_url_errors() -> list[Error]:
    parts = urlsplit(settings.PORTAL_BASE_URL)
    if parts.scheme != "https" or not parts.hostname or _is_local(parts.hostname):
        return [
            _error(
                f"PORTAL_BASE_URL is {settings.PORTAL_BASE_URL!r}: links in emails and the OAuth redirect URI "
                "must use the portal's public https address.",
                "Set PORTAL_BASE_URL to the public https:// address of the portal (not localhost).",
                7,
            )
        ]
    return []


@register(Tags.security, deploy=False)
def production_settings_are_safe(app_configs=None, **kwargs) -> list[Error]:
    if not getattr(settings, "PRODUCTION", False):
        return []
    errors = []
    if settings.SECRET_KEY == settings.DEMO_SECRET_KEY or len(settings.SECRET_KEY) < 32:
        errors.append(
            _error(
                "DJANGO_SECRET_KEY is the demo default (or shorter than 32 characters).",
                "Set DJANGO_SECRET_KEY to a long random value.",
                1,
            )
        )
    if settings.FIELD_ENCRYPTION_KEY == settings.DEMO_FIELD_ENCRYPTION_KEY or len(settings.FIELD_ENCRYPTION_KEY) < 32:
        errors.append(
            _error(
                "FIELD_ENCRYPTION_KEY is the demo default (or shorter than 32 characters).",
                "Set FIELD_ENCRYPTION_KEY to a long random value, kept apart from DJANGO_SECRET_KEY.",
                2,
            )
        )
    if settings.DEBUG:
        errors.append(_error("DEBUG is on in production.", "Set DJANGO_DEBUG=false.", 3))
    if settings.META_SIMULATOR:
        errors.append(
            _error(
                "The Meta simulator is on in production.",
                "Set META_SIMULATOR=false; the simulator is for the demo and tests only.",
                4,
            )
        )
    if settings.FIELD_ENCRYPTION_KEY == settings.SECRET_KEY:
        errors.append(
            _error(
                "FIELD_ENCRYPTION_KEY equals DJANGO_SECRET_KEY.",
                "Set FIELD_ENCRYPTION_KEY to a key of its own, so DJANGO_SECRET_KEY can rotate without losing tokens.",
                5,
            )
        )
    if settings.META_APP_SECRET in ("", settings.DEMO_META_APP_SECRET):
        errors.append(
            _error(
                "META_APP_SECRET is the demo value (or empty).",
                "Set META_APP_SECRET to your Meta app's secret (App Dashboard > App settings > Basic).",
                6,
            )
        )
    errors += _base_url_errors()
    backend = UNDELIVERING_EMAIL_BACKENDS.get(settings.EMAIL_BACKEND)
    if backend:
        errors.append(
            _error(
                f"Email goes to the {backend} backend, which delivers nothing: reminders would be marked sent unread.",
                "Set EMAIL_URL to your mail server, e.g. smtp+tls://user:password@smtp.example.com:587.",
                8,
            )
        )
    if str(settings.CELERY_BROKER_URL).startswith(SINGLE_MACHINE_BROKERS):
        errors.append(
            _error(
                f"Celery's broker is {settings.CELERY_BROKER_URL!r}, which only works on one machine.",
                "Set REDIS_URL to the Redis every web, worker and beat process shares, e.g. redis://redis:6379/0.",
                9,
            )
        )
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        errors.append(
            _error(
                "The database is SQLite, the demo's embedded default.",
                "Set DATABASE_URL to PostgreSQL, e.g. postgres://portal:password@db:5432/portal.",
                10,
            )
        )
    if str(settings.META_APP_ID) in ("", settings.DEMO_META_APP_ID):
        errors.append(
            _error(
                "META_APP_ID is the demo app's id (or empty).",
                "Set META_APP_ID to your Meta app's id.",
                11,
            )
        )
    if settings.META_WEBHOOK_VERIFY_TOKEN in ("", settings.DEMO_WEBHOOK_VERIFY_TOKEN):
        errors.append(
            _error(
                "META_WEBHOOK_VERIFY_TOKEN is the demo value (or empty).",
                "Set META_WEBHOOK_VERIFY_TOKEN to a random string and enter the same in the App Dashboard's "
                "webhook subscription.",
                12,
            )
        )
    if not settings.STAFF_TWO_FACTOR_REQUIRED:
        errors.append(
            _error(
                "Two-factor authentication for staff is off in production.",
                "Unset STAFF_TWO_FACTOR_REQUIRED (or set it to true); only the demo may switch it off.",
                80,
            )
        )
    return errors


@register(Tags.security, deploy=False)
def production_settings_are_sound(app_configs=None, **kwargs) -> list[Warning]:
    """What works but misbehaves with more than one process: warned, not refused."""
    if not getattr(settings, "PRODUCTION", False):
        return []
    warnings = []
    backend = settings.CACHES["default"]["BACKEND"]
    if settings.RATE_LIMITS_ENABLED and backend.endswith(("LocMemCache", "DummyCache")):
        warnings.append(
            Warning(
                "Rate limits count per process: the cache is not shared.",
                hint="Set REDIS_URL (or CACHE_REDIS_URL) so every web process counts together.",
                id="portal.W001",
            )
        )
    return warnings


def refuse_unsafe_production() -> None:
    """Stop a process (gunicorn, a Celery worker or beat) that would run with unsafe production settings."""
    errors = production_settings_are_safe()
    if errors:
        lines = "\n".join(f"  {error.id}: {error.msg}\n      HINT: {error.hint}" for error in errors)
        raise ImproperlyConfigured(f"Refusing to start in production with unsafe settings:\n{lines}")
