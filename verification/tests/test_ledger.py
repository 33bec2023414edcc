"""The API-call ledger: the Graph hook's counts, apart for the Marketing API, with no lost increments."""

import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connections, transaction

from graph.hooks import CallRecord, notify_call
from verification import ledger
from verification.models import ApiCallHour

NOW = datetime(2026, 11, 23, 14, 35, tzinfo=UTC)
OK = CallRecord(family="ads", http_status=200, error_code=None, is_marketing=True)
FAILED = CallRecord(family="ads", http_status=400, error_code=100, is_marketing=True)
GRAPH_OK = CallRecord(family="debug_token", http_status=200, error_code=None, is_marketing=False)
TIMEOUT = CallRecord(family="me", http_status=0, error_code=None, is_marketing=False)


def buckets():
    return {(row.hour, row.api): (row.calls, row.errors) for row in ApiCallHour.objects.all()}


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_every_graph_call_is_counted_in_its_hour_with_marketing_apart(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for record in (OK, OK, FAILED, GRAPH_OK, TIMEOUT):
            notify_call(record)  # the hook registered by VerificationConfig.ready()
    hour = datetime(2026, 11, 23, 14, tzinfo=UTC)
    assert buckets() == {(hour, "marketing"): (3, 1), (hour, "graph"): (2, 1)}


@pytest.mark.django_db
def test_calls_in_another_hour_go_to_another_bucket():
    ledger.add_calls("marketing", at=NOW)
    ledger.add_calls("marketing", at=NOW + timedelta(hours=1))
    assert sorted(buckets().values()) == [(1, 0), (1, 0)]


@pytest.mark.django_db
def test_inside_a_transaction_the_count_waits_for_the_commit(django_capture_on_commit_callbacks):
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


def _hammer_the_ledger(start):
    # The parent closed its connections before forking: each child opens its own.
    start.wait()
    for i in range(CALLS_PER_PROCESS):
        ledger.record_call(FAILED if i % 3 == 0 else OK)
    connections.close_all()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_several_processes_counting_at_once_lose_no_increment(postgres_required):
    connections.close_all()
    context = multiprocessing.get_context("fork")
    start = context.Event()
    workers = [context.Process(target=_hammer_the_ledger, args=(start,)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    totals = ApiCallHour.objects.filter(api="marketing")
    assert sum(row.calls for row in totals) == PROCESSES * CALLS_PER_PROCESS
    assert sum(row.errors for row in totals) == PROCESSES * (CALLS_PER_PROCESS // 3)
