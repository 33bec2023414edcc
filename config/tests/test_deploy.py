"""The portal started as docs/deploy.md says, with real processes, and readiness as services fail.

A PostgreSQL cluster and a Redis server of the test's own (the shared ones must keep running
for everyone else) serve the production settings of deploy/production.env.example. The
Procfile's release, web, worker and beat commands run as they would on a host; the test logs in
to the admin over plain HTTP the way a TLS-terminating proxy forwards it (X-Forwarded-Proto),
loads pages and their hashed CSS, then stops and starts PostgreSQL, Redis and beat and reads
what /readyz says each time.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path

import pytest
import requests

from conftest import service_unavailable
from testsupport.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOST = "portal.example.test"
PORT_RANGE = range(55410, 55500)  # ports this project's tests may bind
DEADLINE_SECONDS = 90

pytestmark = [pytest.mark.slow, pytest.mark.services]


def free_port(start: int = PORT_RANGE.start) -> int:
    for port in range(start, PORT_RANGE.stop):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in the range")


def wait_until(condition: Callable[[], object], what: str, deadline: float = DEADLINE_SECONDS):
    """Poll until ``condition()`` is truthy (services starting, beat ticking): not a timing assertion."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            last = condition()
        except (requests.RequestException, OSError) as error:
            last = error
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.25)
    pytest.fail(f"gave up waiting for {what} (last: {last!r})")


def procfile() -> dict[str, list[str]]:
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        commands[name.strip()] = shlex.split(command)
    return commands


def documented_env() -> dict[str, str]:
    from config.tests.test_production import example_env

    return example_env()


@dataclass
class Postgres:
    directory: Path
    port: int
    bin: Path = field(default_factory=lambda: Path(sorted(glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent)

    def _as_postgres(self, *command: str) -> list[str]:
        # PostgreSQL refuses to run as root.
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def init(self) -> None:
        if os.geteuid() == 0:  # the postgres user must reach the directory: not under pytest's private tmp
            self.directory.chmod(0o755)
            shutil.chown(self.directory, "postgres")
        subprocess.run(
            self._as_postgres(str(self.bin / "initdb"), "-D", str(self.directory / "data"), "-U", "postgres",
                              "--auth=trust", "-E", "UTF8", "--no-sync"),
            check=True, capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-o", options,
                              "-l", str(self.directory / "log"), "-w", "start"),
            check=True, capture_output=True,
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w",
                              "stop"),
            capture_output=True,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/portal"


@dataclass
class Redis:
    port: int
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close() or True, "redis")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@dataclass
class Deployment:
    env: dict[str, str]
    base: str
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    postgres: Postgres | None = None
    redis: Redis | None = None

    def run(self, *command: str) -> subprocess.CompletedProcess:
        result = subprocess.run(list(command), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
        return result

    def start(self, name: str) -> None:
        with (self.logs / f"{name}.log").open("a") as log:
            self.processes[name] = subprocess.Popen(
                procfile()[name], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self, name: str) -> None:
        stop_process_group(self.processes.pop(name))

    def serving(self) -> bool:
        if self.processes["web"].poll() is not None:
            pytest.fail(f"gunicorn exited:\n{self.log('web')[-3000:]}")
        return True

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def get(self, path: str, **headers) -> requests.Response:
        return requests.get(self.base + path, headers=headers, allow_redirects=False, timeout=20)

    def readiness(self) -> tuple[int, dict]:
        response = self.get("/readyz", Host="10.0.0.7")  # a load balancer probes by IP
        return response.status_code, response.json()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    if not (glob("/usr/lib/postgresql/*/bin/initdb") and shutil.which("redis-server")):
        service_unavailable("PostgreSQL's server binaries (initdb) or redis-server are not installed")
    tmp = tmp_path_factory.mktemp("deploy")
    postgres = Postgres(Path(tempfile.mkdtemp(prefix="portal-test-pg-")), free_port())
    redis = Redis(free_port(postgres.port + 1))
    postgres.init()
    postgres.start()
    subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", "portal"], check=True)
    redis.start()
    web_port = free_port(redis.port + 1)
    env = {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        **documented_env(),
        # The documented environment, with this machine's services and hosts in it.
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": HOST,
        "PORTAL_BASE_URL": f"https://{HOST}",
        # FORWARDED_ALLOW_IPS stays the documented proxy's address, not this test's 127.0.0.1: Django's
        # DJANGO_SECURE_PROXY_SSL_HEADER alone makes the forwarded HTTPS request secure.
        "PORTAL_TRUSTED_PROXY_COUNT": "0",
        "DJANGO_SECURE_HSTS_SECONDS": "3600",
        "DATABASE_URL": postgres.url,
        "DATABASE_CONNECT_TIMEOUT": "2",
        "REDIS_URL": redis.url,
        "EMAIL_URL": f"smtp://127.0.0.1:{free_port(web_port + 1)}",
        "META_APP_ID": "987654321012345",
        "META_APP_SECRET": secrets.token_hex(16),
        "META_WEBHOOK_VERIFY_TOKEN": secrets.token_hex(16),
        "PORTAL_VAR_DIR": str(tmp / "var"),
        "DJANGO_STATIC_ROOT": str(tmp / "static"),
        "GUNICORN_BIND": f"127.0.0.1:{web_port}",
        "GUNICORN_WORKERS": "2",
        "READINESS_TIMEOUT_SECONDS": "1",
        # Beat every 2 s, "down" after 8 s without a sweep: the test sees beat stop without waiting minutes.
        "SWEEP_BEAT_SECONDS": "2",
        "READINESS_BEAT_MAX_AGE_SECONDS": "8",
    }
    (tmp / "var").mkdir()
    deploy = Deployment(env, f"http://127.0.0.1:{web_port}", tmp, postgres=postgres, redis=redis)
    try:
        release = procfile()["release"]
        deploy.run(*release)
        deploy.run("python", "manage.py", "collectstatic", "--no-input")
        deploy.env["DJANGO_SUPERUSER_PASSWORD"] = "a long operator passphrase"
        deploy.run("python", "manage.py", "createsuperuser", "--no-input", "--username", "operator",
                   "--email", "ops@example.test")  # fmt: skip
        del deploy.env["DJANGO_SUPERUSER_PASSWORD"]
        for name in ("web", "worker", "beat"):
            deploy.start(name)
        wait_until(lambda: deploy.serving() and deploy.get("/healthz").status_code == 200, "gunicorn to serve /healthz")
        yield deploy
    finally:
        for name in list(deploy.processes):
            deploy.stop(name)
        redis.stop()
        postgres.stop()
        shutil.rmtree(postgres.directory, ignore_errors=True)


def current_totp(base32_key: str) -> str:
    """What an authenticator app shows now for this key (RFC 6238: 30-second steps, 6 digits)."""
    from base64 import b32decode

    from django_otp.oath import TOTP

    return f"{TOTP(b32decode(base32_key)).token():06d}"


def cookies_of(*responses: requests.Response) -> str:
    # The cookies are Secure; over this plain-HTTP hop a client library would not send them back.
    jar = {}
    for response in responses:
        jar.update({cookie.name: cookie.value for cookie in response.cookies})
    return "; ".join(f"{name}={value}" for name, value in jar.items())


def test_the_admin_login_works_through_a_tls_terminating_proxy_and_pages_load_their_css(deployment):
    proxied = {"Host": HOST, "X-Forwarded-Proto": "https"}
    # Without the proxy's header the request was plain HTTP: redirected to HTTPS.
    plain = deployment.get("/admin/login/", Host=HOST)
    assert plain.status_code == 301 and plain.headers["Location"] == f"https://{HOST}/admin/login/"

    form = deployment.get("/admin/login/", **proxied)
    assert form.status_code == 200
    assert form.headers["Strict-Transport-Security"] == "max-age=3600; includeSubDomains; preload"
    assert "form-action 'self' https://www.facebook.com" in form.headers["Content-Security-Policy"]
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    login = requests.post(
        f"{deployment.base}/admin/login/?next=/admin/",
        data={"username": "operator", "password": "a long operator passphrase", "csrfmiddlewaretoken": csrf,
              "next": "/admin/"},
        headers={**proxied, "Origin": f"https://{HOST}", "Cookie": cookies_of(form)},
        allow_redirects=False, timeout=20,
    )  # fmt: skip
    assert login.status_code == 302 and login.headers["Location"] == "/admin/", login.text[:2000]
    assert "Secure" in login.headers["Set-Cookie"] and "HttpOnly" in login.headers["Set-Cookie"]

    # Production asks for a second factor: a first sign-in sets up the authenticator app (D80).
    cookies = cookies_of(form, login)
    assert deployment.get("/admin/", **proxied, Cookie=cookies).headers["Location"].startswith("/admin/login/")
    setup = deployment.get("/admin/two-factor/setup/", **proxied, Cookie=cookies)
    assert setup.status_code == 200 and "<svg" in setup.text
    key = re.search(r'<code class="otp-key">([A-Z2-7 ]+)</code>', setup.text).group(1).replace(" ", "")
    done = requests.post(
        f"{deployment.base}/admin/two-factor/setup/",
        data={"otp_token": current_totp(key),  # the login rotated the CSRF token: the setup page's
              "csrfmiddlewaretoken": re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', setup.text).group(1)},
        headers={**proxied, "Origin": f"https://{HOST}", "Cookie": cookies},
        allow_redirects=False, timeout=20,
    )  # fmt: skip
    assert done.status_code == 302 and done.headers["Location"] == "/admin/", done.text[:2000]
    admin = deployment.get("/admin/", **proxied, Cookie=cookies_of(form, login, done))
    assert admin.status_code == 200 and "Who breaks next" in admin.text
    stylesheet = re.search(r'<link rel="stylesheet" href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', admin.text)
    assert stylesheet, "the admin links its hashed stylesheet"
    css = deployment.get(stylesheet.group(1), **proxied)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "immutable" in css.headers["Cache-Control"]

    home = deployment.get("/", **proxied)
    portal_css = re.search(r'href="(/static/css/portal\.[0-9a-f]{12}\.css)"', home.text).group(1)
    assert "--brand" in deployment.get(portal_css, **proxied).text
    assert deployment.get("/no-such-page/", **proxied).status_code == 404

    # One JSON object per line, gunicorn's own included; each request's records with its id.
    request_id = admin.headers["X-Request-ID"]
    access = [json.loads(line) for line in deployment.log("web").splitlines()]
    assert {"logger": "portal.access", "path": "/admin/", "status": 200, "request_id": request_id}.items() <= (
        next(line for line in access if line.get("request_id") == request_id).items()
    )


def test_readiness_is_ok_with_a_worker_answering_and_beat_sweeping(deployment):
    status, body = wait_until(lambda: (r := deployment.readiness())[0] == 200 and r, "every check to pass")
    assert body["status"] == "ok" and set(body["checks"]) == {"database", "broker", "beat", "worker"}
    assert body["checks"]["worker"]["workers_answering"] >= 1
    assert body["checks"]["beat"]["last_sweep_age_seconds"] <= 8
    sweep_logs = [json.loads(line) for line in deployment.log("worker").splitlines() if line.startswith("{")]
    assert any(line.get("task_id") and "tokens.start_health_sweep" in line["message"] for line in sweep_logs)


def failed_checks(deployment) -> list[str] | None:
    status, body = deployment.readiness()
    return body.get("failed") if status == 503 else None


def ready(deployment) -> bool:
    return deployment.readiness()[0] == 200


def outage(deployment, stop: Callable[[], None], start: Callable[[], None], until: str | None = None) -> list[str]:
    """Stop a service, return what readiness names as failed (once it names ``until``, if given), start
    it again and wait for recovery."""
    wait_until(lambda: ready(deployment), "a ready portal")
    stop()

    def failed():
        names = failed_checks(deployment)
        return names if names and (until is None or until in names) else None

    try:
        return wait_until(failed, "readiness to fail")
    finally:
        start()
        wait_until(lambda: ready(deployment), "readiness after the service is back (everything reconnected)")


def test_readiness_names_the_database_while_postgresql_is_stopped_and_recovers(deployment):
    failed = outage(deployment, deployment.postgres.stop, deployment.postgres.start)
    assert "database" in failed and "broker" not in failed


def test_readiness_names_the_broker_while_redis_is_stopped_and_recovers(deployment):
    answers = []

    def stop_redis():
        deployment.redis.stop()
        answers.append(wait_until(lambda: failed_checks(deployment) and deployment.readiness()[1], "an answer"))

    failed = outage(deployment, stop_redis, deployment.redis.start)
    assert "broker" in failed and "database" not in failed
    assert answers[0]["checks"]["worker"]["error"] == "not checked: the broker is down"


def test_readiness_names_beat_when_beat_stops_and_recovers_when_it_runs_again(deployment):
    # Waits for beat to be named: the worker's one-second ping (this test's setting) can miss once
    # while the worker is busy with the two-second sweeps, which is not what this test is about.
    failed = outage(deployment, lambda: deployment.stop("beat"), lambda: deployment.start("beat"), until="beat")
    assert "beat" in failed and not {"database", "broker"} & set(failed)
