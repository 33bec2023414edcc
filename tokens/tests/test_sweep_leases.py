"""Claims are leases, not checks: a chunk that dies is checked again, once, and the run's figures are exact.

A worker dying is played here by a Meta answer that raises ``WorkerDied`` (a BaseException,
as a SIGKILL leaves nothing to catch): the chunk has leased its tokens and written nothing.
The real thing, with Celery workers killed by signal, is in ``test_workers_killed.py``.
"""

from datetime import timedelta

import pytest
import time_machine

from graph.errors import InvalidTokenError, RateLimitError, TransientError
from testsupport.factories import make_token
from testsupport.fake_graph import FakeGraph, FakeToken
from tokens.models import AccessToken, SweepRun
from tokens.sweep import check_tokens, reap, start_sweep
from tokens.tests.test_sweep import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen():
    """The sweep's clock at NOW; shifted by the tests that let leases run out."""
    with time_machine.travel(NOW, tick=False) as clock:
        yield clock


@pytest.fixture
def meta() -> FakeGraph:
    """Meta as the chunks see it: each test adds its tokens (``tokens_of``)."""
    return FakeGraph()


class WorkerDied(BaseException):
    pass


def tokens_of(meta, active_client, count: int, **fake) -> list[int]:
    ids = []
    for i in range(count):
        value = f"lease-{i}"
        meta.tokens[value] = FakeToken(**fake)
        ids.append(make_token(active_client, value=value, expires_at=NOW + timedelta(days=60), next_check_at=NOW).pk)
    return ids


def dying(meta):
    """Meta's answer never arrives: the worker dies while asking."""

    def die(values):
        raise WorkerDied

    broken = FakeGraph()
    broken.tokens = meta.tokens
    broken.debug_tokens = die
    return broken


def killed_chunk(meta, chunk, run, task_id="task-1"):
    with pytest.raises(WorkerDied):
        check_tokens(chunk, run_id=run.pk, client=dying(meta), task_id=task_id)


def test_a_lease_is_not_a_check_and_the_same_message_delivered_again_checks_everything_at_once(
    frozen, meta, active_client
):
    ids = tokens_of(meta, active_client, 5)
    run, (chunk,) = start_sweep()
    killed_chunk(meta, chunk, run)
    leased = AccessToken.objects.filter(pk__in=ids)
    assert set(leased.values_list("last_checked_at", flat=True)) == {None}
    assert leased.filter(claimed_until__gt=NOW, sweep_pending=True).count() == 5

    again = check_tokens(chunk, run_id=run.pk, client=meta, task_id="task-1")  # Celery: same task id

    run.refresh_from_db()
    assert (again.checked, again.handled, again.skipped) == (5, 5, 0)
    assert (run.status, run.items_done, run.items_total, run.errors, run.items_deferred) == ("finished", 5, 5, 0, 0)
    assert run.totals["statuses"] == {"active": 5, "expiring": 0, "invalid": 0}
    assert set(leased.values_list("last_checked_at", flat=True)) == {NOW}
    assert not leased.filter(sweep_pending=True).exists() and set(leased.values_list("claim_id", flat=True)) == {""}


def test_another_chunk_leaves_a_live_lease_alone_and_the_reaper_hands_it_on_once_it_runs_out(
    frozen, meta, active_client, settings
):
    tokens_of(meta, active_client, 4)
    run, (chunk,) = start_sweep()
    killed_chunk(meta, chunk, run)

    assert check_tokens(chunk, run_id=run.pk, client=meta, task_id="other").skipped == 4
    assert reap().requeue == []  # the lease may belong to a live worker
    frozen.shift(timedelta(seconds=settings.SWEEP_CHUNK_LEASE_SECONDS + 1))
    reaped = reap()
    assert [(run_id, sorted(ids)) for run_id, ids in reaped.requeue] == [(run.pk, sorted(chunk))]
    assert reap().requeue == []  # released: not queued a second time

    for run_id, ids in reaped.requeue:
        check_tokens(ids, run_id=run_id, client=meta, task_id="reaped")
    run.refresh_from_db()
    assert (run.status, run.items_done, run.chunks_total, run.chunks_done) == ("finished", 4, 2, 1)


def test_a_slow_chunk_whose_lease_was_handed_on_writes_and_counts_nothing(frozen, meta, active_client, settings):
    ids = tokens_of(meta, active_client, 3, expires_at=NOW + timedelta(days=2))
    run, (chunk,) = start_sweep()
    later = NOW + timedelta(seconds=settings.SWEEP_CHUNK_LEASE_SECONDS + 1)
    answer = meta.debug_tokens

    def slow(values):
        # While the first chunk waits for Meta, its lease runs out and the reaper's chunk checks them.
        with time_machine.travel(later, tick=False):
            for run_id, reaped in reap().requeue:
                check_tokens(reaped, run_id=run_id, client=meta, task_id="reaped")
        return answer(values)

    slow_meta = FakeGraph()
    slow_meta.tokens = meta.tokens
    slow_meta.debug_tokens = slow
    first = check_tokens(chunk, run_id=run.pk, client=slow_meta, task_id="slow")

    run.refresh_from_db()
    assert (first.handled, first.lost, first.checked, first.expiring) == (0, 3, 0, 0)
    assert (run.items_done, run.items_expiring, run.chunks_done, run.status) == (3, 3, 1, "finished")
    assert set(AccessToken.objects.filter(pk__in=ids).values_list("last_checked_at", flat=True)) == {later}


def test_a_chunk_that_committed_but_died_before_closing_the_run_is_closed_by_the_reaper(frozen, meta, active_client):
    tokens_of(meta, active_client, 2)
    run, (chunk,) = start_sweep()
    check_tokens(chunk, run_id=run.pk, client=meta)
    SweepRun.objects.filter(pk=run.pk).update(status="running", finished_at=None)  # as if it died after commit

    assert reap().finished == [run.pk]
    run.refresh_from_db()
    assert (run.status, run.items_done) == ("finished", 2)


def test_errors_and_deferrals_are_not_checks_and_come_back_by_the_next_beat(frozen, meta, active_client, settings):
    failing = tokens_of(meta, active_client, 2)
    meta.debug_failures = {f"lease-{i}": TransientError("Meta answered HTTP 502", http_status=502) for i in range(2)}
    run, (chunk,) = start_sweep()
    result = check_tokens(chunk, run_id=run.pk, client=meta)

    run.refresh_from_db()
    assert (result.errors, result.checked, result.invalid) == (2, 0, 0)
    assert (run.status, run.items_done, run.errors) == ("finished", 0, 2)
    tokens = AccessToken.objects.filter(pk__in=failing)
    assert set(tokens.values_list("status", flat=True)) == {"active"}
    assert set(tokens.values_list("last_checked_at", flat=True)) == {None}
    beat = timedelta(seconds=settings.SWEEP_BEAT_SECONDS)
    assert all(NOW < moment <= NOW + beat for moment in tokens.values_list("next_check_at", flat=True))

    meta.debug_failures = {}
    frozen.shift(beat)
    run2, chunks = start_sweep()
    for ids in chunks:
        check_tokens(ids, run_id=run2.pk, client=meta)
    run2.refresh_from_db()
    assert (run2.items_total, run2.items_done) == (2, 2)


def test_a_rate_limit_defers_the_rest_and_the_run_counts_them_apart(frozen, meta, active_client):
    tokens_of(meta, active_client, 120)
    limited = iter([False, True])
    answer = meta.debug_tokens

    def throttled_second_batch(values):
        if next(limited, True):
            return [RateLimitError("(#4) Application request limit reached", code=4, retry_after=120)] * len(values)
        return answer(values)

    meta.debug_tokens = throttled_second_batch
    run, (chunk,) = start_sweep(chunk_size=500)
    check_tokens(chunk, run_id=run.pk, client=meta, sleep=lambda s: None)

    run.refresh_from_db()
    assert (run.items_done, run.items_deferred, run.errors, run.status) == (50, 70, 0, "finished")
    assert run.totals["deferred"] == 70


def test_meta_not_answering_several_batches_in_a_row_defers_the_rest_instead_of_asking(
    frozen, meta, active_client, settings
):
    tokens_of(meta, active_client, 200)
    asked = []

    def down(values):
        asked.append(len(values))
        return [TransientError("Could not reach Meta (ReadTimeout)", http_status=0)] * len(values)

    meta.debug_tokens = down
    run, (chunk,) = start_sweep()
    check_tokens(chunk, run_id=run.pk, client=meta)

    run.refresh_from_db()
    assert len(asked) == settings.SWEEP_OUTAGE_BATCHES
    assert (run.errors, run.items_deferred, run.items_done) == (50 * len(asked), 200 - 50 * len(asked), 0)
    assert not AccessToken.objects.filter(status="invalid").exists()


def test_a_chunk_out_of_time_stops_asking_and_defers_the_rest(frozen, meta, active_client, settings):
    tokens_of(meta, active_client, 150)
    ticks = iter([0.0, 0.0, settings.SWEEP_CHUNK_BUDGET_SECONDS + 1])
    run, (chunk,) = start_sweep()
    check_tokens(chunk, run_id=run.pk, client=meta, clock=lambda: next(ticks, 10**6))

    run.refresh_from_db()
    assert (run.items_done, run.items_deferred, run.status) == (50, 100, "finished")


def test_only_a_190_marks_invalid_and_each_invalid_token_is_counted_once(frozen, meta, active_client):
    dead = tokens_of(meta, active_client, 3, is_valid=False, error=InvalidTokenError("x", code=190, subcode=460))
    run, (chunk,) = start_sweep()
    check_tokens(chunk, run_id=run.pk, client=meta)
    check_tokens(chunk, run_id=run.pk, client=meta)

    run.refresh_from_db()
    assert (run.items_done, run.items_invalid) == (3, 3)
    assert run.totals["statuses"] == {"active": 0, "expiring": 0, "invalid": 3}
    assert set(AccessToken.objects.filter(pk__in=dead).values_list("status", flat=True)) == {"invalid"}


def test_a_staff_check_during_a_run_leaves_the_token_to_the_run_so_its_figures_stay_its_own(
    frozen, meta, active_client
):
    ids = tokens_of(meta, active_client, 2)
    run, (chunk,) = start_sweep()

    check_tokens(ids[:1], client=meta)  # "Check now" outside the run
    check_tokens(chunk, run_id=run.pk, client=meta)

    run.refresh_from_db()
    assert (run.status, run.items_done, run.items_total) == ("finished", 2, 2)
