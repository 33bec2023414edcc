"""Liveness and readiness for load balancers: any Host header, plain HTTP, JSON naming what failed.

The same checks against real PostgreSQL and Redis being stopped: config/tests/test_deploy.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from config import health
from tokens.models import SweepRun
from tokens.sweep.runs import JOB

pytestmark = pytest.mark.django_db


@pytest.fixture
def production_like(settings):
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    settings.SECURE_SSL_REDIRECT = True


@pytest.fixture
def fake_checks(monkeypatch):
    """Replace the broker and worker checks (they need a running worker) with answers given by the test."""
    answers = {"broker": health.CheckResult(True), "worker": health.CheckResult(True, {"workers_answering": 1})}
    monkeypatch.setitem(health.CHECKS, "broker", lambda: answers["broker"])
    monkeypatch.setitem(health.CHECKS, "worker", lambda: answers["worker"])
    return answers


def recent_sweep(age: timedelta = timedelta(minutes=1)) -> SweepRun:
    return SweepRun.objects.create(job=JOB, started_at=timezone.now() - age, status=SweepRun.Status.FINISHED)


def test_liveness_answers_a_probe_by_ip_over_http_whatever_the_host_header(client, production_like):
    response = client.get("/healthz", HTTP_HOST="10.0.3.7:8000")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert client.get("/", HTTP_HOST="10.0.3.7:8000").status_code == 400  # other paths still check the host


def test_readiness_answers_a_probe_by_ip_over_http_whatever_the_host_header(client, production_like, fake_checks):
    recent_sweep()
    response = client.get("/readyz", HTTP_HOST="10.0.3.7")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and set(body["checks"]) == {"database", "broker", "beat", "worker"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["beat"]["last_sweep_age_seconds"] == 60


def test_readiness_is_503_naming_the_broker_when_it_is_down_and_skips_the_worker(client, fake_checks):
    recent_sweep()
    fake_checks["broker"] = health.CheckResult(False, {"error": "OperationalError"})
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker", "worker"]
    assert body["checks"]["worker"]["error"] == "not checked: the broker is down"
    assert body["checks"]["database"]["ok"] and body["checks"]["beat"]["ok"]


def test_readiness_is_503_naming_beat_when_the_last_sweep_is_too_old(client, fake_checks, settings):
    settings.READINESS_BEAT_MAX_AGE_SECONDS = 900
    recent_sweep(timedelta(minutes=16))
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["failed"] == ["beat"]
    assert "is beat running?" in response.json()["checks"]["beat"]["error"]


def test_readiness_is_503_naming_beat_before_any_sweep_has_run(client, fake_checks):
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["failed"] == ["beat"]


def test_readiness_is_503_naming_the_worker_when_none_answers(client, fake_checks):
    recent_sweep()
    fake_checks["worker"] = health.CheckResult(False, {"error": "no worker answered"})
    assert client.get("/readyz").json()["failed"] == ["worker"]


def test_a_load_balancer_can_ask_only_for_the_checks_that_concern_a_web_node(client, fake_checks):
    response = client.get("/readyz?check=database,broker")  # no sweep ever: beat would fail
    assert response.status_code == 200 and set(response.json()["checks"]) == {"database", "broker"}
    assert client.get("/readyz?check=database&check=nonsense").status_code == 400


def test_the_database_check_reports_the_error_class_only(monkeypatch):
    class Broken:
        def cursor(self):
            raise RuntimeError("could not connect to postgres://portal:SECRET@db")

        def close_if_unusable_or_obsolete(self):
            pass

    monkeypatch.setattr(health, "connections", {"default": Broken()})
    result = health.check_database()
    assert not result.ok and result.detail == {"error": "RuntimeError"}


def test_health_answers_are_never_cached_and_other_methods_fall_through(client, fake_checks):
    assert client.get("/healthz")["Cache-Control"] == "no-store"
    assert client.post("/healthz").status_code == 404
