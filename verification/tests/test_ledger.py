"""The API-call ledger: the Graph hook's counts, apart for the Marketing API, with no lost increments."""

import multiprocessing
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import DatabaseError, connections, transaction

from graph.hooks import CallRecord, notify_call, notify_calls
from testsupport.processes import run_in_fresh_processes
from verification import ledger, tasks
from verification.models import ApiCallHour

NOW = datetime(2026, 11, 23, 14, 35, tzinfo=UTC)
OK = CallRecord(family="ads", http_status=200, error_code=None, is_marketing=True)
FAILED = CallRecord(family="ads", http_status=400, error_code=100, is_marketing=True)
GRAPH_OK = CallRecord(family="debug_token", http_status=200, error_code=None, is_marketing=False)
TIMEOUT = CallRecord(family="me", http_status=0, error_code=None, is_marketing=False)


def buckets():
    return {(row.hour, row.api): (row.calls, row.errors) for row in ApiCallHour.objects.all()}


@pytest.fixture
def database_ledger(settings):
    settings.VERIFICATION_LEDGER_REDIS_URL = ""


@pytest.fixture
def redis_ledger(settings, redis_url):
    """The hook counts in Redis under a prefix of this test's own; its keys are deleted afterwards."""
    settings.VERIFICATION_LEDGER_REDIS_URL = redis_url
    client = ledger.redis_client()
    yield client
    keys = list(client.scan_iter(match=f"{settings.VERIFICATION_LEDGER_REDIS_PREFIX}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=["database", "redis"])
def either_ledger(request):
    request.getfixturevalue(f"{request.param}_ledger")
    return request.param


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_every_graph_call_is_counted_in_its_hour_with_marketing_apart(
    either_ledger, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for record in (OK, OK, FAILED, GRAPH_OK, TIMEOUT):
            notify_call(record)  # the hook registered by VerificationConfig.ready()
    ledger.flush()
    hour = datetime(2026, 11, 23, 14, tzinfo=UTC)
    assert buckets() == {(hour, "marketing"): (3, 1), (hour, "graph"): (2, 1)}


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_the_items_of_one_batch_answer_are_counted_together(either_ledger, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notify_calls([OK, OK, FAILED, GRAPH_OK, TIMEOUT] * 10)  # one batch answer of 50 items
    ledger.flush()
    hour = datetime(2026, 11, 23, 14, tzinfo=UTC)
    assert buckets() == {(hour, "marketing"): (30, 10), (hour, "graph"): (20, 10)}


@pytest.mark.django_db
def test_calls_in_another_hour_go_to_another_bucket():
    ledger.add_calls("marketing", at=NOW)
    ledger.add_calls("marketing", at=NOW + timedelta(hours=1))
    assert sorted(buckets().values()) == [(1, 0), (1, 0)]


@pytest.mark.django_db
def test_inside_a_transaction_the_count_waits_for_the_commit(database_ledger, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        notify_call(OK)
        assert not ApiCallHour.objects.exists()
    assert len(callbacks) == 1
    assert ApiCallHour.objects.get().calls == 1


@pytest.mark.django_db
def test_the_fallback_for_other_databases_increments_too(monkeypatch):
    monkeypatch.setattr(connections["default"], "vendor", "other")
    ledger.add_calls("graph", at=NOW)
    ledger.add_calls("graph", errors=1, at=NOW)
    assert ApiCallHour.objects.get().calls == 2
    assert ApiCallHour.objects.get().errors == 1


@pytest.mark.django_db
def test_the_last_n_calls_are_read_back_from_the_newest_hours():
    ledger.add_calls("marketing", calls=300, errors=30, at=NOW)  # newest hour: 10% errors
    ledger.add_calls("marketing", calls=400, errors=200, at=NOW - timedelta(hours=5))  # older: 50%
    ledger.add_calls("marketing", calls=1000, errors=1000, at=NOW - timedelta(days=3))
    calls, errors = ledger.last_calls("marketing", 500, NOW)
    assert calls == 500
    assert errors == pytest.approx(30 + 200 * 200 / 400)


@pytest.mark.django_db
def test_with_fewer_calls_than_n_all_of_them_count():
    ledger.add_calls("marketing", calls=20, errors=2, at=NOW)
    assert ledger.last_calls("marketing", 500, NOW) == (20, 2)


@pytest.mark.django_db
def test_pruning_deletes_only_old_buckets():
    ledger.add_calls("graph", at=NOW - timedelta(days=100))
    ledger.add_calls("graph", at=NOW)
    assert ledger.prune(NOW - timedelta(days=90)) == 1
    assert ApiCallHour.objects.count() == 1


PROCESSES = 4
CALLS_PER_PROCESS = 150


def hammer_the_ledger() -> int:
    """In a child process: count CALLS_PER_PROCESS calls, a third of them failed."""
    for i in range(CALLS_PER_PROCESS):
        ledger.record_call(FAILED if i % 3 == 0 else OK)
    return 0


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_several_processes_counting_at_once_lose_no_increment(postgres_required, database_ledger):
    codes = run_in_fresh_processes(
        PROCESSES, "verification.tests.test_ledger:hammer_the_ledger",
        settings_overrides={"VERIFICATION_LEDGER_REDIS_URL": ""},
    )
    assert codes == [0] * PROCESSES
    totals = ApiCallHour.objects.filter(api="marketing")
    assert sum(row.calls for row in totals) == PROCESSES * CALLS_PER_PROCESS
    assert sum(row.errors for row in totals) == PROCESSES * (CALLS_PER_PROCESS // 3)


# --- Redis: counters in Redis, moved into the database by the periodic flush (D16)


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_with_redis_a_sweep_sized_burst_of_calls_makes_no_database_query(redis_ledger, django_assert_num_queries):
    with django_assert_num_queries(0):
        for i in range(1000):  # a chunk of 500 tokens: two batch items each
            notify_call(FAILED if i % 10 == 0 else OK)
    assert ledger.flush() == 1000
    assert buckets() == {(datetime(2026, 11, 23, 14, tzinfo=UTC), "marketing"): (1000, 100)}


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_the_figures_include_counts_not_yet_flushed_and_a_flush_counts_them_once(redis_ledger):
    ledger.add_calls("marketing", calls=10, errors=1, at=NOW)  # already in the database
    for record in (OK, OK, FAILED):
        notify_call(record)
    figures = (
        ledger.totals_in_window("marketing", 15, NOW),
        ledger.last_calls("marketing", 500, NOW),
        ledger.daily_totals("marketing", NOW.date(), NOW.date()),
    )
    assert figures == ((13, 2), (13, 2), {NOW.date(): (13, 2)})
    ledger.flush()
    assert ledger.flush() == 0
    assert buckets() == {(datetime(2026, 11, 23, 14, tzinfo=UTC), "marketing"): (13, 2)}
    assert ledger.pending_counts() == {}
    assert ledger.totals_in_window("marketing", 15, NOW) == (13, 2)


@pytest.mark.django_db
def test_the_last_n_calls_merge_unflushed_hours_with_stored_ones(redis_ledger):
    ledger.add_calls("marketing", calls=300, errors=30, at=NOW - timedelta(hours=1))
    with time_machine.travel(NOW, tick=False):
        for _ in range(100):
            notify_call(FAILED)
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        notify_call(OK)  # same hour as the stored bucket
    calls, errors = ledger.last_calls("marketing", 201, NOW)
    assert calls == 201
    assert errors == pytest.approx(100 + 30 * 101 / 301)


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_key_left_behind_by_a_flusher_that_died_is_applied_once(redis_ledger, settings):
    for _ in range(5):
        notify_call(OK)
    pending, flushing = ledger._keys()
    left_behind = f"{settings.VERIFICATION_LEDGER_REDIS_PREFIX}processing:dead"
    redis_ledger.eval(ledger._CLAIM, 3, pending, left_behind, flushing)  # claimed, then the flusher died
    notify_call(OK)
    assert ledger.flush() == 6
    assert ledger.flush() == 0
    assert buckets()[datetime(2026, 11, 23, 14, tzinfo=UTC), "marketing"] == (6, 0)
    assert not redis_ledger.exists(left_behind, flushing)


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_flusher_whose_key_another_flusher_applied_first_writes_nothing(redis_ledger, monkeypatch):
    notify_call(OK)
    applied_by_the_other_flusher = []
    add_calls = ledger.add_calls

    def the_other_flusher_deletes_the_key_meanwhile(*args):
        add_calls(*args)
        for key in redis_ledger.scan_iter(match="*processing:*"):
            applied_by_the_other_flusher.append(redis_ledger.delete(key))

    monkeypatch.setattr(ledger, "add_calls", the_other_flusher_deletes_the_key_meanwhile)
    assert ledger.flush() == 0
    assert applied_by_the_other_flusher == [1]
    assert not ApiCallHour.objects.exists()


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_commit_that_fails_after_the_delete_puts_the_counts_back_in_redis(redis_ledger, monkeypatch):
    notify_call(FAILED)
    real_atomic = transaction.atomic

    @contextmanager
    def commit_fails():
        with real_atomic():
            yield
            transaction.set_rollback(True)
        raise DatabaseError("could not commit")

    monkeypatch.setattr(ledger.transaction, "atomic", commit_fails)
    with pytest.raises(DatabaseError):
        ledger.flush()
    monkeypatch.undo()
    assert not ApiCallHour.objects.exists()
    assert ledger.pending_counts() == {(datetime(2026, 11, 23, 14, tzinfo=UTC), "marketing"): [1, 1]}
    assert ledger.flush() == 1


@pytest.mark.django_db
def test_while_redis_is_unreachable_the_hook_counts_in_the_database(settings, django_capture_on_commit_callbacks):
    settings.VERIFICATION_LEDGER_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with django_capture_on_commit_callbacks(execute=True):
        notify_call(FAILED)
    assert ledger.totals_in_window("marketing", 1) == (1, 1)


def test_the_flush_is_scheduled_by_name(settings):
    from config.celery import app

    assert "verification.flush_ledger" in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    app.loader.import_default_modules()
    assert "verification.flush_ledger" in app.tasks


def _count_in_redis(start):
    start.wait()
    for i in range(CALLS_PER_PROCESS):
        ledger.record_call(FAILED if i % 3 == 0 else OK)


@pytest.mark.services
@pytest.mark.django_db
def test_several_processes_counting_in_redis_while_flushes_run_lose_and_repeat_nothing(redis_ledger):
    context = multiprocessing.get_context("fork")
    start = context.Event()
    workers = [context.Process(target=_count_in_redis, args=(start,)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    start.set()
    flushes = 0
    while any(worker.is_alive() for worker in workers):
        tasks.flush_ledger()
        flushes += 1
    for worker in workers:
        worker.join(timeout=120)
    tasks.flush_ledger()
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    totals = ApiCallHour.objects.filter(api="marketing")
    assert sum(row.calls for row in totals) == PROCESSES * CALLS_PER_PROCESS
    assert sum(row.errors for row in totals) == PROCESSES * (CALLS_PER_PROCESS // 3)
    assert flushes > 1
