"""Production mode refuses unsafe settings: in `manage.py`, gunicorn, a Celery worker and beat alike.

Every refusal names the variable to set. The documented production environment
(deploy/production.env.example) passes `check --deploy` without a warning.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from config.checks import production_settings_are_safe, production_settings_are_sound, refuse_unsafe_production

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = ROOT / "deploy" / "production.env.example"
PYTHON_BIN = Path(sys.executable).parent
# The checks read the database engine; no query is made with the overridden DATABASES.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")

SAFE_PRODUCTION = {
    "PRODUCTION": True,
    "SECRET_KEY": "s" * 50,
    "FIELD_ENCRYPTION_KEY": "f" * 50,
    "DEBUG": False,
    "META_SIMULATOR": False,
    "META_APP_ID": "987654321012345",
    "META_APP_SECRET": "a-real-app-secret",
    "META_WEBHOOK_VERIFY_TOKEN": "a-random-verify-token",
    "PORTAL_BASE_URL": "https://portal.example.com",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "DATABASES": {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "portal"}},
}


def production_env(tmp_path, **extra) -> dict[str, str]:
    """Production mode with nothing else set: every demo default is still in place."""
    return {
        "PATH": f"{PYTHON_BIN}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "PORTAL_VAR_DIR": str(tmp_path),
        "DJANGO_PRODUCTION": "true",
        **extra,
    }


def example_env() -> dict[str, str]:
    values = {}
    for line in EXAMPLE_ENV.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@override_settings(**SAFE_PRODUCTION)
def test_safe_production_settings_pass():
    assert production_settings_are_safe() == []
    refuse_unsafe_production()  # raises nothing


@pytest.mark.parametrize(
    ("unsafe", "check_id", "names"),
    [
        ({"SECRET_KEY": "demo-insecure-secret-key-change-me"}, "portal.E001", "DJANGO_SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "portal.E001", "DJANGO_SECRET_KEY"),
        ({"FIELD_ENCRYPTION_KEY": "demo-insecure-field-encryption-key-change-me"}, "portal.E002",
         "FIELD_ENCRYPTION_KEY"),
        ({"DEBUG": True}, "portal.E003", "DJANGO_DEBUG=false"),
        ({"META_SIMULATOR": True}, "portal.E004", "META_SIMULATOR=false"),
        ({"FIELD_ENCRYPTION_KEY": "s" * 50}, "portal.E005", "FIELD_ENCRYPTION_KEY"),
        ({"META_APP_SECRET": "demo-app-secret"}, "portal.E006", "META_APP_SECRET"),
        ({"META_APP_SECRET": ""}, "portal.E006", "META_APP_SECRET"),
        ({"PORTAL_BASE_URL": "http://portal.example.com"}, "portal.E007", "PORTAL_BASE_URL"),
        ({"PORTAL_BASE_URL": "https://localhost:8443"}, "portal.E007", "PORTAL_BASE_URL"),
        ({"PORTAL_BASE_URL": "https://127.0.0.1"}, "portal.E007", "PORTAL_BASE_URL"),
        ({"PORTAL_BASE_URL": "https://portal.localhost"}, "portal.E007", "PORTAL_BASE_URL"),
        ({"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}, "portal.E008", "EMAIL_URL"),
        ({"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}, "portal.E008", "EMAIL_URL"),
        ({"CELERY_BROKER_URL": "filesystem://"}, "portal.E009", "REDIS_URL"),
        ({"DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3"}}}, "portal.E010",
         "DATABASE_URL"),
        ({"META_APP_ID": "100000000000001"}, "portal.E011", "META_APP_ID"),
        ({"META_WEBHOOK_VERIFY_TOKEN": "demo-webhook-verify-token"}, "portal.E012", "META_WEBHOOK_VERIFY_TOKEN"),
    ],
)  # fmt: skip
def test_production_refuses_each_unsafe_setting_and_says_which_variable_to_set(unsafe, check_id, names):
    with override_settings(**{**SAFE_PRODUCTION, **unsafe}):
        errors = production_settings_are_safe()
        assert [error.id for error in errors] == [check_id]
        assert names in errors[0].hint
        with pytest.raises(Exception, match=check_id):
            refuse_unsafe_production()


@override_settings(PRODUCTION=False, DEBUG=True)
def test_demo_mode_allows_the_defaults():
    assert production_settings_are_safe() == []
    assert production_settings_are_sound() == []


@override_settings(
    **SAFE_PRODUCTION, CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
)
def test_production_warns_when_rate_limits_count_per_process():
    assert [warning.id for warning in production_settings_are_sound()] == ["portal.W001"]


ALL_DEMO_DEFAULT_ERRORS = [f"portal.E{number:03d}" for number in (1, 2, 6, 7, 8, 9, 10, 11, 12)]


def test_manage_py_stops_on_the_demo_defaults_in_production(tmp_path):
    env = production_env(tmp_path, DJANGO_DEBUG="true", META_SIMULATOR="true")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    for check_id in [*ALL_DEMO_DEFAULT_ERRORS, "portal.E003", "portal.E004"]:
        assert check_id in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["gunicorn", "config.wsgi", "--bind", "127.0.0.1:0", "--workers", "1"],
        ["celery", "-A", "config", "worker", "--pool", "solo"],
        ["celery", "-A", "config", "beat"],
    ],
    ids=["gunicorn", "celery-worker", "celery-beat"],
)
def test_servers_refuse_to_start_in_production_with_the_demo_defaults(tmp_path, command):
    result = subprocess.run(
        command, cwd=ROOT, env=production_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Refusing to start in production with unsafe settings" in output
    for check_id in ALL_DEMO_DEFAULT_ERRORS:
        assert check_id in output
    assert "Set REDIS_URL" in output and "Set DATABASE_URL" in output


def test_the_documented_production_environment_passes_check_deploy(tmp_path):
    env = {**production_env(tmp_path), **example_env()}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_security_settings_come_from_the_environment(tmp_path):
    env = {
        **production_env(tmp_path),
        **example_env(),
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://other.example.com",
        "DJANGO_SECRET_KEY_FALLBACKS": "an-old-secret-key-still-accepted-for-signatures",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
    }
    code = (
        "import django, json, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(json.dumps({'hsts': s.SECURE_HSTS_SECONDS, 'subdomains': s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
        " 'preload': s.SECURE_HSTS_PRELOAD, 'redirect': s.SECURE_SSL_REDIRECT, 'proxy': s.SECURE_PROXY_SSL_HEADER,"
        " 'origins': s.CSRF_TRUSTED_ORIGINS, 'fallbacks': s.SECRET_KEY_FALLBACKS,"
        " 'cookies': [s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE],"
        " 'static': s.STORAGES['staticfiles']['BACKEND'], 'log': s.LOG_FORMAT}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "hsts": 31536000,
        "subdomains": True,
        "preload": True,
        "redirect": False,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
        "origins": ["https://other.example.com", "https://portal.example.com"],
        "fallbacks": ["an-old-secret-key-still-accepted-for-signatures"],
        "cookies": [True, True],
        "static": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "log": "json",
    }
