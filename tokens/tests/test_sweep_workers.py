"""The sweep with real processes: Celery workers on Redis and PostgreSQL, the simulator over HTTP.

- A worker's pool process SIGKILLed mid-chunk: its parent requeues the message (acks_late,
  reject_on_worker_lost), the redelivery (same task id) takes its leases back at once.
- A whole worker SIGKILLed mid-chunk: the message waits in Redis's unacked set (for an hour
  here, longer than the test), so only the reaper can bring the chunk back: once the lease runs
  out, ``tokens.reap_sweeps`` (beat's, called here) queues its tokens as a new chunk.
Either way every token of the chunk is checked within 5 minutes and the run's figures are exact
(decisions.md D60-D62). The kill is deterministic: the simulator holds the chunk's first batch
until the test has killed the worker waiting for it. Completion is awaited by polling.
"""

import os
import signal
import time
from pathlib import Path

import pytest

from testsupport.factories import make_client
from tokens import tasks
from tokens.models import AccessToken, SweepRun
from tokens.tests.test_sweep_simulator import onboard
from tokens.tests.test_workers import start_workers  # noqa: F401 (fixture)

pytestmark = [pytest.mark.services, pytest.mark.slow]

RECHECK_SECONDS = 300  # the promise: every token of a killed chunk checked within 5 minutes
TOKENS = 5


def wait_until(condition, what: str, seconds: float = RECHECK_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Not within {seconds} s: {what}")
        time.sleep(0.25)  # polling interval, not a timing assumption


def pool_processes(pid: int) -> list[int]:
    """The worker's child processes (its prefork pool), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def due_tokens(meta) -> list[int]:
    ids = [onboard(meta, make_client(name=f"Swept {i}", meta_business_id=None)).pk for i in range(TOKENS)]
    AccessToken.objects.filter(pk__in=ids).update(next_check_at=None, last_checked_at=None)
    return ids


def worker_env(meta, **extra) -> dict[str, str]:
    return {
        "META_GRAPH_URL": meta.graph_url,
        "PORTAL_BASE_URL": meta.base_url,
        "SWEEP_CHUNK_SIZE": "500",
        **extra,
    }


def start_sweep_mid_chunk(meta, queue: str, ids: list[int]) -> SweepRun:
    """Start a sweep of these tokens on the workers and return once a worker waits for Meta's answer."""
    meta.api.hang_requests(1, seconds=RECHECK_SECONDS)
    AccessToken.objects.filter(pk__in=ids).update(next_check_at="2000-01-01T00:00:00Z")
    tasks.start_health_sweep.apply_async(queue=queue)
    wait_until(lambda: meta.api.hanging_requests() == 1, "a worker to be waiting for the chunk's first batch")
    run = SweepRun.objects.get()
    tokens = AccessToken.objects.filter(pk__in=ids)
    assert tokens.filter(sweep_run=run, sweep_pending=True, claimed_until__isnull=False).count() == TOKENS
    return run


def assert_checked_once_with_exact_figures(run: SweepRun, ids: list[int]) -> None:
    run.refresh_from_db()
    tokens = AccessToken.objects.filter(pk__in=ids)
    assert None not in set(tokens.values_list("last_checked_at", flat=True))
    assert set(tokens.values_list("status", flat=True)) == {"active"}
    assert not tokens.filter(sweep_pending=True).exists()
    assert (run.status, run.items_total, run.items_done, run.errors, run.items_deferred) == (
        "finished", TOKENS, TOKENS, 0, 0,
    )  # fmt: skip
    assert run.totals["statuses"] == {"active": TOKENS, "expiring": 0, "invalid": 0}
    assert run.totals["unchecked"] == 0


def run_finished(run: SweepRun) -> bool:
    return SweepRun.objects.filter(pk=run.pk, status="finished").exists()


def test_a_pool_process_killed_mid_chunk_is_redelivered_and_every_token_is_checked_once(
    start_workers, simulated_meta  # noqa: F811
):
    ids = due_tokens(simulated_meta)
    # Leases far longer than the promise: only the redelivery (same task id) can make it in time.
    env = worker_env(simulated_meta, SWEEP_CHUNK_TIME_LIMIT="3600", CELERY_VISIBILITY_TIMEOUT="7200")
    queue = start_workers(1, env, pool="prefork")
    run = start_sweep_mid_chunk(simulated_meta, queue, ids)
    (pool,) = pool_processes(start_workers.processes[0].pid)

    os.kill(pool, signal.SIGKILL)  # mid-chunk: leased, Meta asked, nothing written
    simulated_meta.api.release_hangs()

    wait_until(lambda: run_finished(run), "the redelivered chunk to check every token")
    assert_checked_once_with_exact_figures(run, ids)


def test_a_whole_worker_killed_mid_chunk_is_checked_by_a_chunk_the_reaper_queues(
    start_workers, simulated_meta  # noqa: F811
):
    ids = due_tokens(simulated_meta)
    # Redis would hand the message back only after an hour: the reaper must not wait for it.
    env = worker_env(simulated_meta, SWEEP_CHUNK_TIME_LIMIT="15", CELERY_VISIBILITY_TIMEOUT="3600")
    queue = start_workers(1, env)
    run = start_sweep_mid_chunk(simulated_meta, queue, ids)
    worker = start_workers.processes[0]

    os.killpg(worker.pid, signal.SIGKILL)  # the whole worker: its message stays unacked in Redis
    worker.wait(timeout=30)
    simulated_meta.api.release_hangs()
    start_workers(1, env)  # its process manager starts it again

    def reaped_and_finished() -> bool:
        tasks.reap_sweeps.apply_async(queue=queue)  # beat's next run (every minute in production)
        return run_finished(run)

    wait_until(reaped_and_finished, "the reaper's chunk to check every token")
    assert_checked_once_with_exact_figures(run, ids)
    assert SweepRun.objects.get(pk=run.pk).chunks_total == 2  # the lost chunk and the reaper's
