"""The Celery tasks, called in-process: thin, id-only, and harmless when run twice."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from testsupport.factories import make_client, make_contact, make_token
from testsupport.fake_graph import FakeGraph, FakeToken
from tokens import tasks
from tokens.models import AccessToken, Reminder, SweepRun

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def stub_links(stub_reconnect_links):
    pass


@pytest.fixture
def meta(monkeypatch):
    fake = FakeGraph()
    monkeypatch.setattr("common.meta.graph_client", lambda: fake)
    return fake


def test_planning_and_sending_twice_sends_each_reminder_once(django_capture_on_commit_callbacks):
    client = make_client()
    make_token(client, granted_by=make_contact(client), expires_at=NOW + timedelta(days=2))
    with time_machine.travel(NOW, tick=False):
        with django_capture_on_commit_callbacks() as queued:
            assert tasks.plan_reminders() == {"planned": 2, "reactivated": 0, "cancelled": 0}
            tasks.plan_reminders()
        assert len(queued) == 2  # each planning run asks for a send, after its commit
        first, second = tasks.send_reminders(), tasks.send_reminders()

    assert (first["sent"], second["claimed"]) == (2, 0)
    assert len(mail.outbox) == 2 and Reminder.objects.filter(status="sent").count() == 2


def test_the_beat_task_fans_out_chunks_of_ids_and_a_second_beat_finds_nothing(
    meta, settings, django_capture_on_commit_callbacks, monkeypatch
):
    settings.SWEEP_CHUNK_SIZE = 2
    client = make_client()
    for i in range(3):
        make_token(client, value=f"v{i}", next_check_at=NOW)
        meta.tokens[f"v{i}"] = FakeToken(expires_at=NOW + timedelta(days=50))
    sent = []
    monkeypatch.setattr(tasks.check_token_chunk, "delay", lambda *args: sent.append(args))

    with time_machine.travel(NOW, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            first = tasks.start_health_sweep()
            second = tasks.start_health_sweep()
        for run_id, ids in sent:
            tasks.check_token_chunk(run_id, ids)
            tasks.check_token_chunk(run_id, ids)  # redelivered

    assert (first["chunks"], second["chunks"]) == (2, 0)
    assert all(isinstance(i, int) for _, ids in sent for i in ids)  # ids, never tokens
    assert SweepRun.objects.get(pk=first["run"]).status == "finished"
    assert set(AccessToken.objects.values_list("last_checked_at", flat=True)) == {NOW}


def test_a_crashing_chunk_shows_the_error_and_its_tokens_are_checked_by_a_chunk_the_reaper_queues(
    meta, monkeypatch, settings, django_capture_on_commit_callbacks
):
    meta.tokens["v"] = FakeToken()
    make_token(make_client(), value="v", next_check_at=NOW)
    ids = list(AccessToken.objects.values_list("pk", flat=True))
    with time_machine.travel(NOW, tick=False):
        run_id = tasks.start_health_sweep()["run"]
        with monkeypatch.context() as patch:
            patch.setattr("tokens.sweep.check_tokens", lambda *a, **k: 1 / 0)
            with pytest.raises(ZeroDivisionError):
                tasks.check_token_chunk(run_id, ids)
    run = SweepRun.objects.get(pk=run_id)
    assert (run.status, run.items_done) == ("running", 0)
    assert "ZeroDivisionError" in run.last_error

    queued = []
    monkeypatch.setattr(tasks.check_token_chunk, "delay", lambda *args: queued.append(args))
    with time_machine.travel(NOW + timedelta(seconds=settings.SWEEP_RUN_DEADLINE_SECONDS + 1), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            tasks.reap_sweeps()
        assert queued == [(run_id, ids)]
        tasks.check_token_chunk(*queued[0])

    run.refresh_from_db()
    assert (run.status, run.items_done, run.requeues) == ("finished", 1, 1)


def test_redis_hands_a_message_back_only_after_any_task_could_have_finished_and_a_chunk_keeps_its_lease(settings):
    from config.celery import app

    app.loader.import_default_modules()
    limits = [
        task.time_limit or settings.CELERY_TASK_TIME_LIMIT for name, task in app.tasks.items() if "." in name
    ]  # fmt: skip
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    if visibility is not None:  # Redis; the filesystem transport has none
        assert max(limits) < visibility <= max(limits) + 120
    assert tasks.check_token_chunk.time_limit < settings.SWEEP_CHUNK_LEASE_SECONDS
    assert tasks.check_token_chunk.soft_time_limit < tasks.check_token_chunk.time_limit
    assert tasks.check_token_chunk.soft_time_limit > settings.SWEEP_CHUNK_BUDGET_SECONDS
    assert settings.CELERY_BEAT_SCHEDULE["tokens-reap-sweeps"]["task"] == "tokens.reap_sweeps"
