import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from config.checks import production_settings_are_safe

ROOT = Path(__file__).resolve().parents[2]

SAFE_PRODUCTION = {
    "PRODUCTION": True,
    "SECRET_KEY": "s" * 50,
    "FIELD_ENCRYPTION_KEY": "f" * 50,
    "DEBUG": False,
    "META_SIMULATOR": False,
    "META_APP_SECRET": "a-real-app-secret",
}


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_settings_load_with_no_environment_at_all(tmp_path):
    code = (
        "import django, json, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(json.dumps({'debug': s.DEBUG, 'engine': s.DATABASES['default']['ENGINE'],"
        " 'broker': s.CELERY_BROKER_URL, 'simulator': s.META_SIMULATOR, 'graph': s.META_GRAPH_URL,"
        " 'email': s.EMAIL_BACKEND}))"
    )
    result = run_python(code, {"PORTAL_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded == {
        "debug": True,
        "engine": "django.db.backends.sqlite3",
        "broker": "filesystem://",
        "simulator": True,
        "graph": "http://127.0.0.1:8000/simulator/graph",
        "email": "django.core.mail.backends.console.EmailBackend",
    }


def test_production_mode_refuses_to_start_with_the_demo_defaults(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "DJANGO_PRODUCTION": "true", "DJANGO_DEBUG": "true",
             "META_SIMULATOR": "true", "PORTAL_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    for check_id in ("portal.E001", "portal.E002", "portal.E003", "portal.E004"):
        assert check_id in result.stderr


@override_settings(**SAFE_PRODUCTION)
def test_safe_production_settings_pass():
    assert production_settings_are_safe() == []


@pytest.mark.parametrize(
    ("unsafe", "check_id"),
    [
        ({"SECRET_KEY": "demo-insecure-secret-key-change-me"}, "portal.E001"),
        ({"SECRET_KEY": "short"}, "portal.E001"),
        ({"FIELD_ENCRYPTION_KEY": "demo-insecure-field-encryption-key-change-me"}, "portal.E002"),
        ({"DEBUG": True}, "portal.E003"),
        ({"META_SIMULATOR": True}, "portal.E004"),
        ({"FIELD_ENCRYPTION_KEY": "s" * 50}, "portal.E005"),
        ({"META_APP_SECRET": "demo-app-secret"}, "portal.E006"),
    ],
)
def test_production_rejects_each_unsafe_default_with_a_named_error(unsafe, check_id):
    with override_settings(**{**SAFE_PRODUCTION, **unsafe}):
        assert [error.id for error in production_settings_are_safe()] == [check_id]


@override_settings(PRODUCTION=False, DEBUG=True)
def test_demo_mode_allows_the_defaults():
    assert production_settings_are_safe() == []
