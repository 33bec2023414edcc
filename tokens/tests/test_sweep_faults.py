"""The sweep against the simulator's whole-request faults: the edge's HTML, hangs past the client's
timeout, rate-limit bursts. Nothing marks a token invalid; everything is checked by the first beat
after the faults stop (time moved, not waited)."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from common.meta import graph_client
from testsupport.factories import make_client
from tokens.models import AccessToken, SweepRun
from tokens.sweep import check_tokens, start_sweep
from tokens.tests.test_sweep_simulator import onboard

pytestmark = pytest.mark.django_db(transaction=True)


def sweep_at(moment, **client_options):
    with time_machine.travel(moment, tick=False):
        run, chunks = start_sweep(chunk_size=2)
        for chunk in chunks:
            client = graph_client(sleep=lambda seconds: None, **client_options)
            check_tokens(chunk, run_id=run.pk, client=client, sleep=lambda seconds: None)
    return SweepRun.objects.get(pk=run.pk)


def swept_tokens(meta, count: int):
    ids = [onboard(meta, make_client(meta_business_id=None)).pk for _ in range(count)]
    AccessToken.objects.filter(pk__in=ids).update(next_check_at=timezone.now(), last_checked_at=None)
    return AccessToken.objects.filter(pk__in=ids)


def next_beat(moment):
    return moment + timedelta(seconds=settings.SWEEP_BEAT_SECONDS)


def test_html_from_the_edge_marks_nothing_invalid_and_the_next_beat_checks_everything(simulated_meta):
    tokens = swept_tokens(simulated_meta, 4)
    simulated_meta.api.set_faults(edge_error_rate=1.0)
    start = timezone.now()

    failed = sweep_at(start)

    assert (failed.status, failed.items_done, failed.items_total) == ("finished", 0, 4)
    assert failed.errors + failed.items_deferred == 4 and failed.errors > 0
    assert set(tokens.values_list("status", flat=True)) == {"active"}
    assert set(tokens.values_list("last_checked_at", flat=True)) == {None}

    simulated_meta.api.clear_faults()
    caught_up = sweep_at(next_beat(start))

    assert (caught_up.items_total, caught_up.items_done, caught_up.errors) == (4, 4, 0)
    assert set(tokens.values_list("last_checked_at", flat=True)) == {next_beat(start)}


def test_an_edge_retry_after_longer_than_the_client_waits_puts_the_next_check_after_it(simulated_meta):
    tokens = swept_tokens(simulated_meta, 2)
    simulated_meta.api.set_faults(edge_error_rate=1.0, edge_retry_after=900)
    start = timezone.now()

    run = sweep_at(start)

    assert run.errors == 2 and simulated_meta.api.request_count() >= 1
    assert all(moment >= start + timedelta(seconds=900) for moment in tokens.values_list("next_check_at", flat=True))


def test_a_batch_that_hangs_past_the_clients_timeout_is_an_error_not_invalid(simulated_meta):
    tokens = swept_tokens(simulated_meta, 2)
    simulated_meta.api.set_faults(timeout_rate=1.0, timeout_hang_ms=600)
    start = timezone.now()

    run = sweep_at(start, timeout=0.3, max_retries=1)

    assert (run.errors, run.items_done) == (2, 0)
    assert set(tokens.values_list("status", flat=True)) == {"active"}
    simulated_meta.api.clear_faults()
    assert sweep_at(next_beat(start)).items_done == 2


def test_a_rate_limit_burst_defers_by_metas_regain_time_and_the_next_beat_checks_everything(simulated_meta):
    tokens = swept_tokens(simulated_meta, 4)
    simulated_meta.api.rate_limit_burst(50, regain_minutes=2)
    start = timezone.now()

    throttled = sweep_at(start)

    assert (throttled.items_done, throttled.items_deferred, throttled.errors) == (0, 4, 0)
    assert all(
        start + timedelta(seconds=60) <= moment <= next_beat(start)
        for moment in tokens.values_list("next_check_at", flat=True)
    )
    simulated_meta.api.clear_faults()
    assert sweep_at(next_beat(start)).items_done == 4
    assert set(tokens.values_list("status", flat=True)) == {"active"}
