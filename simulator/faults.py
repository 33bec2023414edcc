"""Faults of whole requests, before Graph sees them: the edge, hangs, rate-limit bursts.

What Meta's edge does when Graph behind it is not answering: a proxy's HTML page instead of
Graph's JSON (``502 Bad Gateway``; ``503 Service Unavailable`` with ``Retry-After`` when set),
with none of Graph's headers. Such a request never reached Graph: it is not counted as a
call. A *hang* holds a request (a batch, by default) until it is released or its time is up,
then answers it as usual: a test arms one, waits until ``hanging_now`` says a worker is stuck on
it, and kills that worker. A *burst* throttles the next N requests whole (every item of a
batch), with the usage headers at 100 and ``estimated_time_to_regain_access`` set by
``throttle_regain_minutes``. Controlled from ``simulator.api`` (``set_faults``,
``hang_requests``, ``release_hangs``, ``rate_limit_burst``) and the controls page.
"""

from __future__ import annotations

import time

from django.db.models import F

from . import core
from .models import SimState

EDGE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Error</title></head>
<body><h1>{title}</h1><p>{text}</p></body></html>
"""
EDGE_502 = EDGE_PAGE.format(
    title="502 Bad Gateway", text="Sorry, something went wrong. We're working on getting this fixed as soon as we can."
)
EDGE_503 = EDGE_PAGE.format(
    title="503 Service Unavailable", text="The server is temporarily unable to service your request. Try again later."
)
HANG_POLL_SECONDS = 0.05


def edge_failure(current: SimState) -> tuple[int, str, dict[str, str]] | None:
    """The edge's answer instead of Graph's for this request, or None (one draw per request)."""
    if current.edge_error_rate <= 0 or core.uniform(current) >= current.edge_error_rate:
        return None
    if current.edge_retry_after > 0:
        return 503, EDGE_503, {"Retry-After": str(current.edge_retry_after)}
    return 502, EDGE_502, {}


def in_burst(current: SimState) -> bool:
    """Take one request of the current rate-limit burst, if one is on."""
    if current.burst_requests <= 0:
        return False
    return bool(SimState.objects.filter(pk=1, burst_requests__gt=0).update(burst_requests=F("burst_requests") - 1))


def maybe_hang(current: SimState, *, is_batch: bool) -> bool:
    """Hold this request if a hang is armed for it; True when it was held (then answered as usual)."""
    if current.hang_count <= 0 or (current.hang_batches_only and not is_batch):
        return False
    if SimState.objects.filter(pk=1, hang_skip__gt=0).update(hang_skip=F("hang_skip") - 1):
        return False
    taken = SimState.objects.filter(pk=1, hang_count__gt=0).update(
        hang_count=F("hang_count") - 1, hanging_now=F("hanging_now") + 1
    )
    if not taken:
        return False
    generation = current.hang_generation
    deadline = time.monotonic() + current.hang_seconds
    try:
        while time.monotonic() < deadline:
            now_generation = SimState.objects.filter(pk=1).values_list("hang_generation", flat=True).first()
            if now_generation != generation:
                break
            time.sleep(HANG_POLL_SECONDS)  # polling for the release, not a timing assumption
    finally:
        SimState.objects.filter(pk=1).update(hanging_now=F("hanging_now") - 1)
    return True
