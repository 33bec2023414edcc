import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
