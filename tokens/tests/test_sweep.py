from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from graph.errors import InvalidTokenError, OtherGraphError, RateLimitError, TransientError
from testsupport.factories import make_asset, make_client, make_grant, make_token
from testsupport.fake_graph import FakeGraph, FakeToken
from tokens.models import AccessToken, AssetGrant, SweepRun, TokenEvent
from tokens.sweep import check_tokens, start_sweep

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def meta():
    return FakeGraph()


def token_with_meta(meta, active_client, value, **fake):
    token = make_token(active_client, value=value, expires_at=NOW + 60 * DAY, next_check_at=NOW)
    meta.tokens[value] = FakeToken(**fake)
    return token


def sweep(meta, **kwargs):
    run, chunks = start_sweep(**kwargs)
    results = [check_tokens(chunk, run_id=run.pk, client=meta, sleep=lambda s: None) for chunk in chunks]
    return run, results


def test_a_valid_token_gets_meta_s_dates_and_is_checked_again_sooner_as_its_end_nears(frozen, meta, active_client):
    far = token_with_meta(meta, active_client, "far", expires_at=NOW + 50 * DAY)
    near = token_with_meta(meta, active_client, "near", expires_at=NOW + 2 * DAY)

    sweep(meta)

    far.refresh_from_db()
    near.refresh_from_db()
    assert far.expires_at == NOW + 50 * DAY and far.status == "active"
    assert near.status == "expiring"
    assert timedelta(hours=21) < far.next_check_at - NOW <= timedelta(hours=24)
    assert timedelta(hours=10) < near.next_check_at - NOW <= timedelta(hours=12)
    assert TokenEvent.objects.filter(kind="expiring", token=near).count() == 1


def test_only_an_invalid_token_error_marks_a_token_invalid_and_keeps_meta_s_subcode(frozen, meta, active_client):
    dead = token_with_meta(
        meta,
        active_client,
        "dead",
        is_valid=False,
        error=InvalidTokenError("Session has expired.", code=190, subcode=463),
    )
    flaky = {
        "timeout": TransientError("Read timed out", http_status=0),
        "server": TransientError("Internal error", code=2, http_status=500),
        "limited": RateLimitError("Application request limit reached", code=4, retry_after=600),
        "odd": OtherGraphError("Unsupported get request", code=100),
    }
    others = {}
    for value, error in flaky.items():
        others[value] = token_with_meta(meta, active_client, value)
        meta.debug_failures[value] = error

    sweep(meta)

    dead.refresh_from_db()
    assert (dead.status, dead.error_code, dead.error_subcode) == ("invalid", 190, 463)
    assert dead.status_reason == "Session has expired."
    for token in others.values():
        token.refresh_from_db()
        assert token.status == "active"
        assert token.next_check_at > NOW
    assert others["timeout"].consecutive_check_failures == 1
    assert others["limited"].next_check_at == NOW + timedelta(seconds=600)


def test_not_valid_without_a_190_is_retried_rather_than_marked_invalid(frozen, meta, active_client):
    token = token_with_meta(meta, active_client, "vague", is_valid=False, error=None)

    sweep(meta)

    token.refresh_from_db()
    assert token.status == "active" and token.consecutive_check_failures == 1


def test_a_rate_limit_stops_the_chunk_and_pushes_the_remaining_tokens_back(frozen, meta, active_client):
    tokens = [token_with_meta(meta, active_client, f"t{i}") for i in range(120)]
    meta.debug_failures["t10"] = RateLimitError("limited", code=4, retry_after=900)

    _, (result,) = sweep(meta)

    assert meta.requests == 1  # the first 50 were inspected, then nothing more was sent
    assert result.deferred == 71  # t10 and the 70 tokens after the first batch
    statuses = set(AccessToken.objects.filter(pk__in=[t.pk for t in tokens]).values_list("status", flat=True))
    assert statuses == {"active"}


def test_high_usage_slows_the_sweep_down_and_stops_it_before_the_budget_is_spent(
    frozen, meta, active_client, settings
):
    for i in range(120):
        token_with_meta(meta, active_client, f"t{i}")
    pauses = []
    meta.usage_percent = 85
    run, chunks = start_sweep()

    check_tokens(chunks[0], run_id=run.pk, client=meta, sleep=pauses.append)
    assert len(pauses) == 3 and all(0 < pause < 5 for pause in pauses)

    meta.usage_percent = 99
    AccessToken.objects.update(next_check_at=NOW, last_checked_at=None)
    run, chunks = start_sweep()
    result = check_tokens(chunks[0], run_id=run.pk, client=meta, sleep=pauses.append)
    assert result.deferred == 120 and result.checked == 0


def test_the_sweep_reads_what_each_token_still_covers(frozen, meta, active_client):
    kept, gone = make_asset(active_client, "Kept", meta_id="101"), make_asset(active_client, "Gone", meta_id="102")
    token = token_with_meta(
        meta,
        active_client,
        "user",
        assets={"101": ("page", "Kept", NOW + 20 * DAY), "103": ("ad_account", "New ads", None)},
        scopes=["pages_show_list", "ads_read"],  # edges are asked only for what the permissions let it read
    )
    make_grant(token, kept)
    make_grant(token, gone)

    sweep(meta)

    grants = {g.asset.meta_id: g for g in AssetGrant.objects.select_related("asset").filter(token=token)}
    assert grants["101"].user_access_expire_time == NOW + 20 * DAY and grants["101"].status == "expiring"
    assert grants["102"].status == "removed" and grants["102"].removed_at == NOW
    assert grants["103"].status == "active" and grants["103"].asset.kind == "ad_account"
    event = TokenEvent.objects.get(kind="assets_changed")
    assert event.data == {"added": ["103"], "removed": ["102"]}
    token.refresh_from_db()
    assert token.next_check_at - NOW <= 5 * DAY  # the asset's end counts, not only the token's


def test_a_failed_coverage_read_changes_no_asset(frozen, meta, active_client):
    token = token_with_meta(meta, active_client, "user", assets={})
    grant = make_grant(token, make_asset(active_client, "Page"))
    meta.coverage_failures["user"] = TransientError("timeout")

    sweep(meta)

    grant.refresh_from_db()
    assert grant.status == "active"


def test_a_chunk_run_twice_or_by_two_workers_changes_nothing_the_second_time(frozen, meta, active_client):
    token_with_meta(meta, active_client, "a", assets={"1": ("page", "P", NOW + 3 * DAY)})
    token_with_meta(meta, active_client, "b", is_valid=False, error=InvalidTokenError("x", code=190, subcode=460))
    run, chunks = start_sweep()
    first = check_tokens(chunks[0], run_id=run.pk, client=meta)
    snapshot = list(AccessToken.objects.values().order_by("pk"))
    events = TokenEvent.objects.count()
    requests = meta.requests

    second = check_tokens(chunks[0], run_id=run.pk, client=meta)

    assert (first.checked, first.invalid) == (1, 1)
    assert (second.checked, second.skipped) == (0, 2)
    assert list(AccessToken.objects.values().order_by("pk")) == snapshot
    assert TokenEvent.objects.count() == events and meta.requests == requests


def test_an_overlapping_sweep_finds_nothing_due_and_the_run_records_its_progress(frozen, meta, active_client):
    for i in range(5):
        token_with_meta(meta, active_client, f"t{i}")
    run, chunks = start_sweep(chunk_size=2)
    overlapping, nothing = start_sweep()
    assert (run.chunks_total, run.items_total, nothing) == (3, 5, [])
    assert overlapping.status == "finished"

    for chunk in chunks[:2]:
        check_tokens(chunk, run_id=run.pk, client=meta)
    run.refresh_from_db()
    assert (run.status, run.chunks_done, run.items_done) == ("running", 2, 4)
    check_tokens(chunks[2], run_id=run.pk, client=meta)

    run.refresh_from_db()
    assert (run.status, run.chunks_done, run.finished_at) == ("finished", 3, NOW)
    assert run.totals["statuses"] == {"active": 5, "expiring": 0, "invalid": 0}
    assert (run.totals["checked"], run.totals["unchecked"]) == (5, 0)
    assert SweepRun.objects.filter(status="running").count() == 0


def test_database_queries_per_chunk_do_not_grow_with_tokens(frozen, meta, active_client):
    def queries_for_a_chunk_of(count: int) -> int:
        AccessToken.objects.update(next_check_at=None)
        for i in range(count):
            token = token_with_meta(meta, active_client, f"t{count}-{i}", assets={f"{count}{i}": ("page", "P", None)})
            make_grant(token, make_asset(active_client, f"Old {count} {i}"))
        run, (chunk,) = start_sweep()
        with CaptureQueriesContext(connection) as queries:
            check_tokens(chunk, run_id=run.pk, client=meta)
        return len(queries)

    few, many = queries_for_a_chunk_of(5), queries_for_a_chunk_of(120)
    # Equal on PostgreSQL; SQLite splits a bulk statement by its bound-parameter limit.
    assert many <= few + 4
    assert AssetGrant.objects.filter(status="removed").count() == 125
    assert AssetGrant.objects.filter(status="active").count() == 125


def test_a_token_revoked_while_meta_was_being_asked_stays_revoked(frozen, meta, active_client):
    token = token_with_meta(meta, active_client, "racing", expires_at=NOW + 2 * DAY)
    answer = meta.debug_tokens

    def revoke_meanwhile(values):
        AccessToken.objects.filter(pk=token.pk).update(status="revoked")  # the deauthorize callback
        return answer(values)

    meta.debug_tokens = revoke_meanwhile

    sweep(meta)

    token.refresh_from_db()
    assert token.status == "revoked"


def test_a_run_whose_chunks_were_lost_is_queued_again_once_then_fails_with_the_count(meta, active_client, settings):
    from tokens.sweep import reap

    token_with_meta(meta, active_client, "lost")
    deadline = timedelta(seconds=settings.SWEEP_RUN_DEADLINE_SECONDS + 1)
    with time_machine.travel(NOW, tick=False):
        lost, _ = start_sweep()  # its chunk is never run
    with time_machine.travel(NOW + deadline, tick=False):
        first = reap()
    with time_machine.travel(NOW + 2 * deadline, tick=False):
        second = reap()
        again, chunks = start_sweep()

    lost.refresh_from_db()
    assert [run for run, _ in first.requeue] == [lost.pk] and second.failed == [lost.pk]
    assert (lost.status, lost.requeues, lost.items_unchecked, lost.totals["unchecked"]) == ("failed", 1, 1, 1)
    assert "1 token(s) were never checked" in lost.last_error
    assert chunks  # the lost chunk's token came due again


def test_a_token_whose_value_no_key_can_read_is_an_error_not_invalid_and_the_others_are_checked(
    frozen, meta, active_client
):
    broken = token_with_meta(meta, active_client, "broken")
    fine = token_with_meta(meta, active_client, "fine")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tokens_accesstoken SET value = %s WHERE id = %s", [b"not a ciphertext", broken.pk])

    _, (result,) = sweep(meta)

    assert (result.checked, result.errors, result.invalid) == (1, 1, 0)
    rows = AccessToken.objects.filter(pk__in=[broken.pk, fine.pk]).order_by("pk")
    assert list(rows.values_list("status", "consecutive_check_failures")) == [("active", 1), ("active", 0)]


def test_a_client_whose_token_turns_invalid_needs_reauthorization_and_transient_errors_leave_it_alone(
    frozen, meta, active_client
):
    steady = make_client(name="Steady Shop")
    token_with_meta(meta, active_client, "dead", is_valid=False, error=InvalidTokenError("Expired", code=190))
    token_with_meta(meta, steady, "flaky")
    meta.debug_failures["flaky"] = TransientError("Internal error", code=2, http_status=500)

    sweep(meta)
    sweep(meta)

    active_client.refresh_from_db()
    steady.refresh_from_db()
    assert active_client.status == "needs_reauth"
    assert active_client.status_changed_at == NOW
    assert steady.status == "active"


def test_a_day_without_change_moves_only_the_next_check_and_a_changed_expiry_is_written(
    frozen, meta, active_client
):
    steady = token_with_meta(meta, active_client, "steady", expires_at=NOW + 50 * DAY)
    extended = token_with_meta(meta, active_client, "extended", expires_at=NOW + 50 * DAY)
    sweep(meta)
    steady.refresh_from_db()
    first_write = steady.updated_at

    frozen.shift(DAY)
    meta.tokens["extended"] = FakeToken(expires_at=NOW + 90 * DAY)
    with CaptureQueriesContext(connection) as queries:
        sweep(meta)

    steady.refresh_from_db()
    extended.refresh_from_db()
    assert steady.last_checked_at == NOW + DAY and steady.next_check_at > NOW + DAY
    assert steady.updated_at == first_write  # nothing about it changed
    assert extended.expires_at == NOW + 90 * DAY and extended.updated_at == NOW + DAY
    token_writes = [q["sql"] for q in queries.captured_queries if 'UPDATE "tokens_accesstoken" AS t' in q["sql"]]
    assert len(token_writes) == 2  # one statement per set of changed fields
    assert all('"scopes"' not in sql for sql in token_writes)
