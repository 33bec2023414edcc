"""`make demo`'s script, end to end: it serves /admin/login/ and the printed staff login works."""

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from testsupport.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen) -> requests.Response:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"demo exited early with {process.returncode}")
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            time.sleep(0.5)  # polling for a server to come up, not timing anything
    pytest.fail(f"demo did not serve {url} within {STARTUP_DEADLINE_SECONDS}s")


@pytest.mark.slow
def test_the_demo_serves_the_admin_and_the_printed_staff_login_works(tmp_path):
    port = free_port()
    log = tmp_path / "demo.log"
    env = {
        key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL", "EMAIL_URL")
    }
    env.update({"PORT": str(port), "PORTAL_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": ""})
    env.pop("DJANGO_SETTINGS_MODULE")
    with log.open("w") as output:
        demo = subprocess.Popen(
            ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(f"{base}/admin/login/", demo).status_code == 200

        match = re.search(r"Staff login: username=(\S+) password=(\S+)", log.read_text())
        assert match, log.read_text()
        username, password = match.groups()

        session = requests.Session()
        login_page = session.get(f"{base}/admin/login/", timeout=10)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
        response = session.post(
            f"{base}/admin/login/?next=/admin/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": csrf, "next": "/admin/"},
            headers={"Referer": f"{base}/admin/login/"},
            timeout=30,
        )
        assert response.status_code == 200
        assert response.url == f"{base}/admin/"
        assert "Site administration" in response.text or "Log out" in response.text
    finally:
        stop(demo)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the demo's process group; SIGKILL whatever a busy worker keeps alive."""
    stop_process_group(process, timeout=20)
