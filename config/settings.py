"""Every setting comes from the environment (django-environ); defaults are safe for the demo.

Production mode (``DJANGO_PRODUCTION=true``) turns the unsafe defaults into
system check errors, see ``config.checks``; docs/deploy.md lists a production environment.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

# Values that only exist so the demo runs with no environment at all. Production
# refuses to start with any of them (config/checks.py).
DEMO_SECRET_KEY = "demo-insecure-secret-key-change-me"
DEMO_FIELD_ENCRYPTION_KEY = "demo-insecure-field-encryption-key-change-me"
DEMO_META_APP_ID = "100000000000001"
DEMO_META_APP_SECRET = "demo-app-secret"
DEMO_WEBHOOK_VERIFY_TOKEN = "demo-webhook-verify-token"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Runtime files of the embedded default: SQLite database, filesystem broker, beat schedule.
VAR_DIR = Path(env.str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))

PRODUCTION = env.bool("DJANGO_PRODUCTION", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEMO_SECRET_KEY)
# Old secret keys still accepted for signatures (sessions, invitation links) while SECRET_KEY rotates.
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

# The portal's public address: absolute links in emails, the OAuth redirect URI, the CSRF origin.
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
PORTAL_NAME = env.str("PORTAL_NAME", default="Tech Provider Portal")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


# HTTPS behind a proxy: forms posted to PORTAL_BASE_URL pass Django's origin check without
# listing it twice; other origins (a second hostname) go in DJANGO_CSRF_TRUSTED_ORIGINS.
CSRF_TRUSTED_ORIGINS = [
    *env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[]),
    *([_origin(PORTAL_BASE_URL)] if _origin(PORTAL_BASE_URL).startswith("https://") else []),
]
# "HTTP_X_FORWARDED_PROTO,https": the header a TLS-terminating proxy sets (and strips from clients).
SECURE_PROXY_SSL_HEADER = tuple(env.list("DJANGO_SECURE_PROXY_SSL_HEADER", default=[])) or None
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=PRODUCTION)
# HSTS is sticky in browsers, so it is off until the operator turns it on (docs/deploy.md).
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = env.list("DJANGO_SILENCED_SYSTEM_CHECKS", default=[])

# Tokens are encrypted with a key of their own so SECRET_KEY can be rotated freely.
# Previous keys stay readable while `rotate_field_encryption_key` re-encrypts rows.
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default=DEMO_FIELD_ENCRYPTION_KEY)
FIELD_ENCRYPTION_PREVIOUS_KEYS = env.list("FIELD_ENCRYPTION_PREVIOUS_KEYS", default=[])
# django-cryptography reads CRYPTOGRAPHY_KEY; our field (tokens.crypto) passes its own
# keys explicitly, this only keeps the library from deriving anything from SECRET_KEY.
CRYPTOGRAPHY_KEY = FIELD_ENCRYPTION_KEY

INSTALLED_APPS = [
    "console",  # the staff console; listed before the admin so its templates win
    "console.apps.PortalAdminConfig",  # django.contrib.admin with the portal's site (console.sites)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "config.apps.PortalConfig",
    "staffjobs",
    "tokens",
    "onboarding",
    "verification",
    "outbound",
    "campaigns",
    "ninja",  # django-ninja's templates and static files: the API's docs page without a CDN (D40)
    "api",
]

META_SIMULATOR = env.bool("META_SIMULATOR", default=not PRODUCTION)
if META_SIMULATOR:
    INSTALLED_APPS.append("simulator")

MIDDLEWARE = [
    # Load balancers' probes are answered before the Host check and the HTTPS redirect.
    "config.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Request id and log context for every record below; refuses NUL and control characters.
    "common.logs.RequestContextMiddleware",
    "common.security.RejectMalformedRequestsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): a TOTP code was given this session
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "common.security.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into its page
]

# Requests under /api/ carry a bearer credential, never a session cookie: their stack leaves out
# what only serves people's sessions (config.handlers, D90).
API_MIDDLEWARE = [
    name for name in MIDDLEWARE
    if name not in {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.locale.LocaleMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django_otp.middleware.OTPMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "axes.middleware.AxesMiddleware",
    }
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.portal",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs the web server, a worker and beat against one file.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
else:
    # Persistent connections (docs/deploy.md suggests 60 s), checked before reuse after a database restart.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, with a health check that costs no round trip while the server said nothing (D92).
        DATABASES["default"]["ENGINE"] = "common.postgresql"
        # Readiness and requests fail fast instead of hanging on an unreachable server.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
            "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
        )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes' backend first: it refuses a locked-out username and address before any password check.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Client-facing text is marked for translation; English is the default and the only language
# shipped. A translation goes in locale/<code>/LC_MESSAGES/django.po and its code in PORTAL_LANGUAGES.
LANGUAGE_CODE = "en"
LANGUAGES = [(code, code) for code in env.list("PORTAL_LANGUAGES", default=["en"])]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static")))
# The app serves its own static files (whitenoise): a bare gunicorn works. In production the
# files are collected with hashed names (collectstatic), so they can be cached for a year.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("PORTAL_HASHED_STATIC", default=PRODUCTION)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG  # the demo serves straight from static/, no collectstatic

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"  # the OAuth callback is a top-level GET navigation back from Meta
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Error reports (and Django's debug page) hide GET parameters that carry codes and tokens too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "common.security.PortalExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "common.security.PortalExceptionReporter"

# Content Security Policy on every response (django-csp). Nothing inline, no CDN; forms may
# post to ourselves and, through the redirect after "Continue with Facebook", to Meta's dialog
# (its origin is added from META_DIALOG_URL per request, see common.security).
CONTENT_SECURITY_POLICY = {
    # The simulator stands where Meta's own pages do (and has Meta's freedom: its dialog sends the
    # browser to any registered redirect URI). It is never mounted in production.
    "EXCLUDE_URL_PREFIXES": ["/simulator/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

# Email
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
if EMAIL_CONFIG.get("EMAIL_BACKEND") == "django.core.mail.backends.smtp.EmailBackend":
    EMAIL_BACKEND = "common.smtp.EmailBackend"  # Django's, writing the same bytes with less CPU (D79)
# Seconds an SMTP connection may block: a hung mail server fails the message instead of the
# worker (and stays well inside REMINDER_LEASE_SECONDS). EMAIL_URL's ?timeout= wins.
EMAIL_TIMEOUT = EMAIL_CONFIG.get("EMAIL_TIMEOUT") or env.int("EMAIL_TIMEOUT", default=20)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Portal <portal@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
SUPPORT_EMAIL = env.str("SUPPORT_EMAIL", default="support@localhost")
HELP_CENTER_URL = env.str("HELP_CENTER_URL", default="https://www.facebook.com/business/help")

# Meta
META_APP_ID = env.str("META_APP_ID", default=DEMO_META_APP_ID)
META_APP_SECRET = env.str("META_APP_SECRET", default=DEMO_META_APP_SECRET)
META_GRAPH_VERSION = env.str("META_GRAPH_VERSION", default="v26.0")
META_GRAPH_URL = env.str(
    "META_GRAPH_URL",
    default=f"{PORTAL_BASE_URL}/simulator/graph" if META_SIMULATOR else "https://graph.facebook.com",
).rstrip("/")
META_DIALOG_URL = env.str(
    "META_DIALOG_URL",
    default=f"{PORTAL_BASE_URL}/simulator/www" if META_SIMULATOR else "https://www.facebook.com",
).rstrip("/")
# "plain": HMAC(app_secret, token); "timestamped": HMAC(app_secret, token|time) + appsecret_time.
META_APPSECRET_PROOF_MODE = env.str("META_APPSECRET_PROOF_MODE", default="plain")
# The provider's own business (the app's): Meta requires it to be no client's (D70).
META_APP_BUSINESS_IDS = env.list("META_APP_BUSINESS_IDS", default=[])
META_WEBHOOK_VERIFY_TOKEN = env.str("META_WEBHOOK_VERIFY_TOKEN", default=DEMO_WEBHOOK_VERIFY_TOKEN)
META_HTTP_TIMEOUT = env.float("META_HTTP_TIMEOUT", default=20.0)

# Celery. Without REDIS_URL the embedded default is kombu's filesystem transport:
# a real broker (worker and beat are separate processes) that needs no service.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # A message a dead worker took comes back after the visibility timeout: matched to the
    # longest task's hard time limit (and a margin), never less, or a live task would run twice
    # (decisions.md D61). The sweep's reaper does not wait for it (SWEEP_CHUNK_LEASE_SECONDS).
    CELERY_VISIBILITY_TIMEOUT = env.int(
        "CELERY_VISIBILITY_TIMEOUT", default=env.int("CELERY_TASK_TIME_LIMIT", default=300) + 60
    )
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{CELERY_BROKER_DIR / 'results'}"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {}  # each app's named entries are added below, in its block

# Celery leaves logging to Django's LOGGING (one format for web, worker and beat).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Cache: rate-limit counters (common.ratelimit). Redis when configured, so every web process
# counts together; per process otherwise (the demo).
CACHE_REDIS_URL = env.str("CACHE_REDIS_URL", default=REDIS_URL)
CACHES = {
    "default": (
        {"BACKEND": "common.cache.RedisCache", "LOCATION": CACHE_REDIS_URL, "KEY_PREFIX": "portal"}
        if CACHE_REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "portal"}
    )
}

# Rate limits (common.ratelimit, docs/architecture.md): "<count>/<s|m|h|d>" per rule, per client
# IP unless the rule says otherwise. Override any of them with RATE_LIMITS="admin-login=5/m,...".
RATE_LIMITS = {
    "connect-start": "20/m",
    "connect-callback": "30/m",
    "invitation": "60/m",
    "deletion-status": "60/m",
    # Meta's servers call these; several share an address, so the limit is generous.
    "meta-callbacks": "600/m",
    # POSTs of the admin login form (attempts); per-account lockout is left to django-axes (D33).
    "admin-login": "10/m",
    # The provider's API: per credential key, and per IP before a credential is known.
    "api": "600/m",
    "api-ip": "1200/m",
    **env.dict("RATE_LIMITS", default={}),
}
RATE_LIMITS_ENABLED = env.bool("RATE_LIMITS_ENABLED", default=True)
RATE_LIMIT_KEY_PREFIX = env.str("RATE_LIMIT_KEY_PREFIX", default="ratelimit:")
# How many proxies in front of the portal append to X-Forwarded-For; 0 trusts only REMOTE_ADDR.
PORTAL_TRUSTED_PROXY_COUNT = env.int("PORTAL_TRUSTED_PROXY_COUNT", default=0)

# Logs: one JSON object per line in production (request id, Celery task id, client id on every
# record), plain text in the demo. Records about requests to Meta's callbacks, the OAuth callback
# and webhooks reach no handler with their query string or body (common.logs).
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "plain")
_SENSITIVE_REQUEST_LOGGERS = [
    "django.request",
    "django.server",
    "django.security.csrf",
    "django.security.DisallowedHost",
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "common.logs.LogContextFilter"},
        "sensitive_requests": {"()": "common.logs.SensitiveRequestFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(log_context)s] %(message)s"},
        "json": {"()": "common.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # urllib3 logs full request URLs at DEBUG; keep it quiet whatever LOG_LEVEL says.
        "urllib3": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # django-axes logs every sign-in at INFO
        # Django's own: the record carries the request (its query string and body) to every
        # handler, e-mail and error reporting included; runserver's carries the request line.
        **{
            name: {"filters": ["sensitive_requests"], "handlers": ["console"], "propagate": False}
            for name in _SENSITIVE_REQUEST_LOGGERS
        },
    },
}

# Error reporting (optional): Sentry when SENTRY_DSN is set, without local variables, request
# bodies or personal data, and with tokens scrubbed from every event (common.sentry).
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="production" if PRODUCTION else "demo")
if SENTRY_DSN:
    from common.sentry import init_sentry

    init_sentry(SENTRY_DSN, environment=SENTRY_ENVIRONMENT)

# --- tokens: lifecycle (health sweeps, reminders) -------------------------------------------
# Reminders go out this many days before access ends, plus once when it has ended.
REMINDER_STAGES_DAYS = env.list("REMINDER_STAGES_DAYS", cast=int, default=[14, 7, 3, 1])
# An "ended" reminder is planned only for ends this recent, so a first deploy does not mail
# every client about tokens that died years ago.
REMINDER_ENDED_WINDOW_DAYS = env.int("REMINDER_ENDED_WINDOW_DAYS", default=7)
REMINDER_BATCH_SIZE = env.int("REMINDER_BATCH_SIZE", default=100)  # messages per mail connection
# Refusals by the mail server (5xx) counted per reminder before it is given up; connection
# failures and deferrals (4xx) never count: those reminders are tried until their stage passes.
REMINDER_MAX_ATTEMPTS = env.int("REMINDER_MAX_ATTEMPTS", default=5)
REMINDER_RETRY_BASE_SECONDS = env.int("REMINDER_RETRY_BASE_SECONDS", default=300)
REMINDER_RETRY_CAP_SECONDS = env.int("REMINDER_RETRY_CAP_SECONDS", default=6 * 3600)
# The mail server unreachable: every sender waits as a whole, from this doubling up to the cap (D66).
REMINDER_OUTAGE_RETRY_BASE_SECONDS = env.int("REMINDER_OUTAGE_RETRY_BASE_SECONDS", default=30)
REMINDER_OUTAGE_RETRY_CAP_SECONDS = env.int("REMINDER_OUTAGE_RETRY_CAP_SECONDS", default=600)
# A sender renews its claim at every message; a claim not renewed for this long belongs to a
# dead worker (decisions.md D65). Must exceed the mail socket timeout (EMAIL_TIMEOUT) with room.
REMINDER_LEASE_SECONDS = env.int("REMINDER_LEASE_SECONDS", default=60)
# Batches sent at once when many reminders are due (one Celery task each, D68).
REMINDER_SENDERS = env.int("REMINDER_SENDERS", default=4)
# Staff hear about reminders given up (not delivered in time, refused) and nobody to tell at
# most this often, each email with the count since the last one (D67).
REMINDER_ALERT_INTERVAL_SECONDS = env.int("REMINDER_ALERT_INTERVAL_SECONDS", default=3600)
# Beat starts a health sweep this often; readiness reports beat down after three missed runs.
SWEEP_BEAT_SECONDS = env.float("SWEEP_BEAT_SECONDS", default=300.0)
SWEEP_CHUNK_SIZE = env.int("SWEEP_CHUNK_SIZE", default=500)  # token ids per Celery task
# A run's tokens are not due again before its deadline, so overlapping sweeps don't check them
# twice. Tokens still unhandled then (a chunk message lost) are queued again once, with a new
# deadline; after that the run fails with their count and they are due again (decisions.md D60).
SWEEP_RUN_DEADLINE_SECONDS = env.int("SWEEP_RUN_DEADLINE_SECONDS", default=1800)
SWEEP_RUN_REQUEUES = env.int("SWEEP_RUN_REQUEUES", default=1)
# A chunk's time limits (a chunk of 500 takes about a second when Meta answers; faults and
# retries stretch it). It stops asking Meta after SWEEP_CHUNK_BUDGET_SECONDS and defers the rest;
# its lease outlives the hard limit a little, so only a dead chunk ever loses it (D61).
SWEEP_CHUNK_TIME_LIMIT = env.int("SWEEP_CHUNK_TIME_LIMIT", default=120)
SWEEP_CHUNK_SOFT_TIME_LIMIT = env.int("SWEEP_CHUNK_SOFT_TIME_LIMIT", default=SWEEP_CHUNK_TIME_LIMIT - 20)
SWEEP_CHUNK_BUDGET_SECONDS = env.float("SWEEP_CHUNK_BUDGET_SECONDS", default=SWEEP_CHUNK_TIME_LIMIT * 0.6)
SWEEP_CHUNK_LEASE_SECONDS = env.int("SWEEP_CHUNK_LEASE_SECONDS", default=SWEEP_CHUNK_TIME_LIMIT + 15)
# Beat: orphaned leases go to new chunks, overdue runs are queued again or failed (D61).
SWEEP_REAPER_SECONDS = env.float("SWEEP_REAPER_SECONDS", default=60.0)
# A token Meta could not answer about, or that was not asked, is due again after this (doubling
# for a token that keeps failing): by the next beat, so a fault that stopped is caught up in one
# sweep interval (D63).
SWEEP_RETRY_SECONDS = env.float("SWEEP_RETRY_SECONDS", default=SWEEP_BEAT_SECONDS / 2)
# Batches in a row Meta did not answer at all before a chunk stops asking (the rest are deferred).
SWEEP_OUTAGE_BATCHES = env.int("SWEEP_OUTAGE_BATCHES", default=2)
SWEEP_CHECK_INTERVAL_HOURS = env.int("SWEEP_CHECK_INTERVAL_HOURS", default=24)  # Meta: check at least daily
# Slow down once the app's usage (X-App-Usage) passes this; stop at the next. A business whose
# X-Business-Use-Case-Usage reaches the stop level has only its own tokens deferred (decisions.md D22).
SWEEP_USAGE_SLOWDOWN_PERCENT = env.int("SWEEP_USAGE_SLOWDOWN_PERCENT", default=75)
SWEEP_USAGE_STOP_PERCENT = env.int("SWEEP_USAGE_STOP_PERCENT", default=95)
# Tests give each pair of workers a queue of its own (tasks re-queue themselves on the default).
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_BEAT_SCHEDULE.update(
    {
        "tokens-health-sweep": {
            "task": "tokens.start_health_sweep",
            "schedule": SWEEP_BEAT_SECONDS,
            "options": {"expires": max(SWEEP_BEAT_SECONDS - 60, SWEEP_BEAT_SECONDS / 2)},
        },
        "tokens-reap-sweeps": {
            "task": "tokens.reap_sweeps",
            "schedule": SWEEP_REAPER_SECONDS,
            "options": {"expires": max(SWEEP_REAPER_SECONDS - 5, SWEEP_REAPER_SECONDS / 2)},
        },
        "tokens-plan-reminders": {"task": "tokens.plan_reminders", "schedule": 900.0, "options": {"expires": 600}},
        "tokens-send-reminders": {"task": "tokens.dispatch_reminders", "schedule": 60.0, "options": {"expires": 50}},
        # Connection health (tokens.health, D25): what time and the provider's standing change.
        "tokens-refresh-connection-health": {
            "task": "tokens.refresh_connection_health", "schedule": 300.0, "options": {"expires": 240},
        },
        "tokens-recompute-every-connection": {
            "task": "tokens.refresh_connection_health", "schedule": 86400.0, "kwargs": {"everything": True},
            "options": {"expires": 3600},
        },
    }
)

# Readiness (/readyz, config.health): beat counts as down when the last health sweep started
# longer ago than this; each check gives up after READINESS_TIMEOUT_SECONDS.
READINESS_BEAT_MAX_AGE_SECONDS = env.float("READINESS_BEAT_MAX_AGE_SECONDS", default=3 * SWEEP_BEAT_SECONDS)
READINESS_TIMEOUT_SECONDS = env.float("READINESS_TIMEOUT_SECONDS", default=2.0)

# --- verification (standing with Meta: deadline alerts, upkeep ledger) ---
# Days before a Tech Provider verification deadline at which staff administrators are emailed, once each.
VERIFICATION_DEADLINE_ALERT_DAYS = env.list("VERIFICATION_DEADLINE_ALERT_DAYS", cast=int, default=[30, 14, 7, 3, 1])
# Extra recipients of staff alerts, besides active superusers with an email.
VERIFICATION_STAFF_ALERT_EMAILS = env.list("VERIFICATION_STAFF_ALERT_EMAILS", default=[])
# Upkeep projection: will the calls window still meet the rule's minimum in this many days?
VERIFICATION_UPKEEP_PROJECTION_DAYS = env.int("VERIFICATION_UPKEEP_PROJECTION_DAYS", default=7)
# Hourly ledger buckets older than this are deleted (the rules look back 15 days).
VERIFICATION_LEDGER_RETENTION_DAYS = env.int("VERIFICATION_LEDGER_RETENTION_DAYS", default=90)
# Call ledger counters (D16): in Redis when set (no database query per Graph call), moved into the
# database by "verification-flush-ledger"; empty: one database upsert per call (D6).
VERIFICATION_LEDGER_REDIS_URL = env.str("VERIFICATION_LEDGER_REDIS_URL", default=REDIS_URL)
# Key prefix: portals (and test runs) sharing a Redis keep their counts apart.
VERIFICATION_LEDGER_REDIS_PREFIX = env.str("VERIFICATION_LEDGER_REDIS_PREFIX", default="portal:ledger:")
# Unflushed counters expire after this long without a call (the flush runs every minute).
VERIFICATION_LEDGER_REDIS_TTL_SECONDS = env.int("VERIFICATION_LEDGER_REDIS_TTL_SECONDS", default=7 * 86400)
# Usage reports (POST /api/v1/usage) for traffic that does not go through the proxy: hours older
# than this are refused (the upkeep windows are 15 days; the ledger keeps VERIFICATION_LEDGER_RETENTION_DAYS).
VERIFICATION_USAGE_REPORT_MAX_AGE_DAYS = env.int("VERIFICATION_USAGE_REPORT_MAX_AGE_DAYS", default=30)

# --- the API's Graph proxy (tokens.proxy, docs/decisions.md D47-D49) ---------------------------
# A scope (the app, a business, an ad account, a token) whose usage header reaches this percent,
# or that Meta throttled, gets 429 with Retry-After until Meta said access comes back (or for the
# pause when it said nothing), without calling Meta.
API_PROXY_USAGE_STOP_PERCENT = env.int("API_PROXY_USAGE_STOP_PERCENT", default=95)
API_PROXY_THROTTLE_PAUSE_SECONDS = env.int("API_PROXY_THROTTLE_PAUSE_SECONDS", default=60)
# Connections to Meta kept open per web process (one pooled client per process, tokens.proxy).
API_PROXY_POOL_SIZE = env.int("API_PROXY_POOL_SIZE", default=20)

CELERY_BEAT_SCHEDULE.update(
    {
        "verification-deadline-alerts": {
            "task": "verification.send_deadline_alerts",
            "schedule": 3600.0,
            "options": {"expires": 3000},
        },
        "verification-check-upkeep": {
            "task": "verification.check_upkeep",
            "schedule": 3600.0,
            "options": {"expires": 3000},
        },
        "verification-reminder-alerts": {
            "task": "verification.check_reminder_alerts",
            "schedule": 300.0,
            "options": {"expires": 240},
        },
        "verification-flush-ledger": {
            "task": "verification.flush_ledger",
            "schedule": 60.0,
            "options": {"expires": 50},
        },
        "verification-prune-ledger": {
            "task": "verification.prune_ledger",
            "schedule": 86400.0,
            "options": {"expires": 3600},
        },
    }
)

# --- onboarding -------------------------------------------------------------------------------
# Invitation links expire after this many days; login `state` after ONBOARDING_STATE_TTL_SECONDS.
INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=14)
# POST /api/v1/reconnect: asset ids per request (Meta asks each asset of the token; D75).
RECONNECT_MAX_ASSETS = env.int("RECONNECT_MAX_ASSETS", default=100)
# Reconnect campaigns: recipients per sending job, so several workers share a large campaign (D76).
CAMPAIGN_SEND_BATCH = env.int("CAMPAIGN_SEND_BATCH", default=200)
ONBOARDING_STATE_TTL_SECONDS = env.int("ONBOARDING_STATE_TTL_SECONDS", default=15 * 60)

# --- graph (the Graph API client, built by common.meta.graph_client) ----------------------------
# Retries of transient errors and rate limits: at most this many, full-jitter backoff from BASE
# doubling up to CAP seconds; a rate limit Meta says lasts longer than CAP is not waited for.
META_HTTP_MAX_RETRIES = env.int("META_HTTP_MAX_RETRIES", default=3)
META_HTTP_BACKOFF_BASE = env.float("META_HTTP_BACKOFF_BASE", default=0.5)
META_HTTP_BACKOFF_CAP = env.float("META_HTTP_BACKOFF_CAP", default=30.0)

# --- outbound (signed webhooks to the provider's product) ---------------------------------------
# Attempt n+1 waits BASE * 2**(n-1) seconds, capped at CAP; retries stop WINDOW hours after the
# first attempt (at least 24: a system check refuses less). An endpoint whose every delivery has
# failed for DISABLE_AFTER_DAYS is disabled and staff are emailed.
OUTBOUND_RETRY_BASE_SECONDS = env.int("OUTBOUND_RETRY_BASE_SECONDS", default=60)
OUTBOUND_RETRY_CAP_SECONDS = env.int("OUTBOUND_RETRY_CAP_SECONDS", default=3 * 3600)
OUTBOUND_RETRY_WINDOW_HOURS = env.int("OUTBOUND_RETRY_WINDOW_HOURS", default=72)
OUTBOUND_DISABLE_AFTER_DAYS = env.int("OUTBOUND_DISABLE_AFTER_DAYS", default=5)
OUTBOUND_TIMEOUT_SECONDS = env.float("OUTBOUND_TIMEOUT_SECONDS", default=10.0)  # per attempt, connect and read
OUTBOUND_BATCH_SIZE = env.int("OUTBOUND_BATCH_SIZE", default=200)  # deliveries handed out per beat run
OUTBOUND_RETENTION_DAYS = env.int("OUTBOUND_RETENTION_DAYS", default=90)  # finished events kept this long
# After "Rotate the signing secret" the previous secret keeps signing (a second v1=) this long.
OUTBOUND_SECRET_OVERLAP_HOURS = env.int("OUTBOUND_SECRET_OVERLAP_HOURS", default=24)
# Endpoint URLs must be https:// (production default); http:// is allowed for the demo and tests.
OUTBOUND_REQUIRE_HTTPS = env.bool("OUTBOUND_REQUIRE_HTTPS", default=PRODUCTION)
CELERY_BEAT_SCHEDULE.update(
    {
        "outbound-deliver-due": {"task": "outbound.deliver_due", "schedule": 60.0, "options": {"expires": 50}},
        "outbound-prune-events": {"task": "outbound.prune_events", "schedule": 86400.0, "options": {"expires": 3600}},
    }
)

# --- api (the provider's API, /api/v1/) -------------------------------------------------------
# One audit row per request by a known credential; kept this long (the client page shows the last).
API_USE_RETENTION_DAYS = env.int("API_USE_RETENTION_DAYS", default=90)
CELERY_BEAT_SCHEDULE.update(
    {"api-prune-uses": {"task": "api.prune_uses", "schedule": 86400.0, "options": {"expires": 3600}}}
)

# --- console (the staff admin): two factors, lockout, roles (docs/decisions.md D80-D82) ---------
# Every admin URL needs a TOTP code given at login. Only the demo may switch it off; production
# refuses to start without it (config/checks.py).
STAFF_TWO_FACTOR_REQUIRED = env.bool("STAFF_TWO_FACTOR_REQUIRED", default=True)
OTP_TOTP_ISSUER = PORTAL_NAME  # the name authenticator apps show beside the code
# django-axes: this many failed logins (wrong password or wrong code) from one address for one
# username lock that pair out for STAFF_LOCKOUT_MINUTES. Request rates are the rate limiter's job.
AXES_FAILURE_LIMIT = env.int("STAFF_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("STAFF_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The address as the rate limiter reads it (PORTAL_TRUSTED_PROXY_COUNT): one client, one address.
AXES_CLIENT_IP_CALLABLE = "common.logs.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_VERBOSE = False
# The first screen's figures are aggregates over every token and grant: kept as a snapshot, refreshed each minute.
CELERY_BEAT_SCHEDULE.update(
    {
        "console-refresh-first-screen": {
            "task": "console.refresh_first_screen",
            "schedule": 60.0,
            "options": {"expires": 50},
        },
    }
)
