"""Liveness and readiness, answered before the Host check and the HTTPS redirect.

``/healthz``: the process serves requests (no check; a load balancer restarts what fails it).
``/readyz``: JSON with each check and 503 naming those that failed:

- ``database``: a query on the default database;
- ``broker``: Celery's broker accepts a connection;
- ``beat``: the last health sweep (beat starts one every SWEEP_BEAT_SECONDS) is recent;
- ``worker``: at least one Celery worker answers a ping.

``/readyz?check=database&check=broker`` runs only those: a web node's load-balancer probe
should not take every web node out because beat stopped (docs/deploy.md).

A probe reaches the process by its IP with whatever Host header the balancer sends, and over
plain HTTP inside the network, so this middleware sits first, before ``ALLOWED_HOSTS`` is
consulted (``request.get_host()``) and before ``SECURE_SSL_REDIRECT``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.utils import timezone

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"


@dataclass
class CheckResult:
    ok: bool
    detail: dict = field(default_factory=dict)

    def as_json(self, elapsed_ms: float) -> dict:
        return {"ok": self.ok, "ms": round(elapsed_ms, 1), **self.detail}


def _failure(error: BaseException) -> CheckResult:
    # The class name only: a driver's message can hold a host, a user or a password.
    return CheckResult(False, {"error": error.__class__.__name__})


def check_database() -> CheckResult:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        connections["default"].close_if_unusable_or_obsolete()
        return _failure(error)
    return CheckResult(True)


def check_broker() -> CheckResult:
    from config.celery import app

    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=settings.READINESS_TIMEOUT_SECONDS)
    except Exception as error:
        return _failure(error)
    return CheckResult(True)


def check_beat() -> CheckResult:
    from tokens.models import SweepRun
    from tokens.sweep.runs import JOB

    try:
        last = SweepRun.objects.filter(job=JOB).order_by("-started_at").values_list("started_at", flat=True).first()
    except Exception as error:
        return _failure(error)
    if last is None:
        return CheckResult(False, {"error": "no health sweep has run yet"})
    age = (timezone.now() - last).total_seconds()
    detail = {"last_sweep_age_seconds": round(age), "max_age_seconds": round(settings.READINESS_BEAT_MAX_AGE_SECONDS)}
    if age > settings.READINESS_BEAT_MAX_AGE_SECONDS:
        return CheckResult(False, {**detail, "error": "the last health sweep is too old: is beat running?"})
    return CheckResult(True, detail)


def check_worker() -> CheckResult:
    from config.celery import app

    try:
        replies = app.control.ping(timeout=settings.READINESS_TIMEOUT_SECONDS, limit=1)
    except Exception as error:
        return _failure(error)
    if not replies:
        return CheckResult(False, {"error": "no worker answered"})
    return CheckResult(True, {"workers_answering": len(replies)})


CHECKS: dict[str, Callable[[], CheckResult]] = {
    "database": check_database,
    "broker": check_broker,
    "beat": check_beat,
    "worker": check_worker,
}
# A worker cannot answer through a broker that is down; asking would only wait for the timeout.
_NEEDS = {"worker": "broker", "beat": "database"}


def readiness(names: list[str] | None = None) -> tuple[bool, dict]:
    results: dict[str, dict] = {}
    for name in names or list(CHECKS):
        needed = _NEEDS.get(name)
        if needed in results and not results[needed]["ok"]:
            results[name] = {"ok": False, "ms": 0.0, "error": f"not checked: the {needed} is down"}
            continue
        started = time.monotonic()
        result = CHECKS[name]()
        results[name] = result.as_json((time.monotonic() - started) * 1000)
    return all(result["ok"] for result in results.values()), results


def _readiness_response(request) -> JsonResponse:
    asked = [name for value in request.GET.getlist("check") for name in value.split(",") if name]
    unknown = sorted(set(asked) - set(CHECKS))
    if unknown:
        return JsonResponse(
            {"error": {"code": "unknown_check", "message": f"Unknown check(s): {', '.join(unknown)}."}}, status=400
        )
    ordered = [name for name in CHECKS if name in asked] if asked else None
    ok, results = readiness(ordered)
    body = {"status": "ok" if ok else "unavailable", "checks": results}
    if not ok:
        body["failed"] = [name for name, result in results.items() if not result["ok"]]
    response = JsonResponse(body, status=200 if ok else 503)
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info.rstrip("/")
        if request.method in ("GET", "HEAD"):
            if path == LIVENESS_PATH:
                response = JsonResponse({"status": "ok"})
                response["Cache-Control"] = "no-store"
                return response
            if path == READINESS_PATH:
                return _readiness_response(request)
        return self.get_response(request)
