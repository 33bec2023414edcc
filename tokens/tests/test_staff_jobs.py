"""Staff actions on tokens as jobs: what they do, what staff read, and that Meta is never asked
inside a database transaction."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from graph.errors import GraphError, InvalidTokenError
from staffjobs.jobs import start_job
from testsupport.factories import make_asset, make_client, make_grant, make_token
from testsupport.fake_graph import FakeGraph, FakeToken
from testsupport.staff import make_staff, run_queued_jobs
from tokens.models import AccessToken, TokenEvent


class TransactionWatchingGraph(FakeGraph):
    """Records, for every call to Meta, whether a database transaction was open at that moment."""

    def __init__(self):
        super().__init__()
        self.in_transaction: list[tuple[str, bool]] = []

    def _called(self, name):
        self.in_transaction.append((name, connection.in_atomic_block))
        super()._called(name)

    def system_user_token(self, *args, **kwargs):
        # A new value each time (a fetch that finds a newer token, then a granular one), known to Meta.
        self.system_user_value = f"EAAB-fake-system-user-token-{len(self.calls):04d}"
        self.tokens[self.system_user_value] = FakeToken(type="SYSTEM_USER")
        return super().system_user_token(*args, **kwargs)

    def debug_tokens(self, values):
        self.in_transaction.append(("debug_tokens", connection.in_atomic_block))
        return super().debug_tokens(values)

    def batch(self, envelope, items, secrets=()):
        self.in_transaction.append(("batch", connection.in_atomic_block))
        return super().batch(envelope, items, secrets)


@pytest.fixture
def meta(monkeypatch):
    graph = TransactionWatchingGraph()
    monkeypatch.setattr("common.meta.graph_client", lambda **overrides: graph)
    return graph


def system_user_token(value="EAAB-system-user-parent-1", **fields):
    client = make_client(meta_business_id="7001")
    return make_token(client, kind=AccessToken.Kind.SYSTEM_USER, value=value, meta_user_id="9001",
                      scopes=["pages_show_list", "ads_read"], **fields)


# Not the `db` fixture: it wraps each test in a transaction, which would hide the one under test.
@pytest.mark.django_db(transaction=True)
def test_every_graph_call_made_by_a_staff_action_runs_outside_any_transaction(meta):
    staff = make_staff("olga")
    parent = system_user_token()
    asset = make_asset(parent.client, meta_id="501")
    make_grant(parent, asset)
    meta.tokens[parent.value] = FakeToken(type="SYSTEM_USER", scopes=["pages_show_list", "ads_read"],
                                          assets={"501": ("page", "Acme Page", None)})
    other = make_token(make_client(name="Other"), value="EAAB-user-token-to-revoke")

    start_job("tokens.check_now", title="check", target_ids=[parent.pk], user=staff)
    start_job("tokens.fetch_system_user_token", title="fetch", target_ids=[parent.pk], user=staff)
    start_job("tokens.create_granular_token", title="granular", target_ids=[parent.pk], user=staff,
              params={"asset_ids": [asset.pk], "scopes": ["pages_show_list"]})
    start_job("tokens.revoke", title="revoke", target_ids=[other.pk], user=staff)
    jobs = run_queued_jobs()

    assert [job.status for job in jobs] == ["finished"] * 4
    called = {name for name, _ in meta.in_transaction}
    assert {"debug_tokens", "system_user_token", "debug_token", "revoke_permissions"} <= called
    assert [name for name, inside in meta.in_transaction if inside] == []


@pytest.mark.django_db
def test_revoke_removes_the_apps_permissions_at_meta_marks_the_token_and_its_children_and_says_who(meta):
    staff = make_staff("olga")
    parent = system_user_token()
    child = make_token(parent.client, kind=AccessToken.Kind.GRANULAR_SYSTEM_USER, parent=parent, configuration=None)

    start_job("tokens.revoke", title="revoke", target_ids=[parent.pk], user=staff)
    (job,) = run_queued_jobs()

    assert meta.revoked == [parent.value]
    assert set(AccessToken.objects.values_list("status", flat=True)) == {"revoked"}
    event = TokenEvent.objects.get(token=parent, kind="revoked")
    assert event.actor == "staff:olga" and event.actor_user == staff
    assert TokenEvent.objects.filter(token=child, kind="revoked", actor_user=staff).exists()
    assert job.outcome[-1]["text"].endswith("1 granular token(s) derived from it were revoked too.")


@pytest.mark.django_db
def test_a_token_meta_already_killed_is_revoked_all_the_same(meta):
    token = make_token(make_client())
    meta.fail_on["revoke_permissions"] = InvalidTokenError("Error validating access token", code=190, subcode=460)

    start_job("tokens.revoke", title="revoke", target_ids=[token.pk], user=make_staff("olga"))
    run_queued_jobs()

    token.refresh_from_db()
    assert token.status == "revoked"


@pytest.mark.django_db
def test_metas_refusal_reaches_staff_as_advice_and_changes_nothing(meta):
    parent = system_user_token()
    asset = make_asset(parent.client, meta_id="502")
    make_grant(parent, asset)
    payload = "(#3962) Requested assets or scopes are not part of the original grant: 502"
    meta.fail_on["system_user_token"] = GraphError(payload, code=3962, fbtrace_id="AbCdEf123")

    start_job("tokens.create_granular_token", title="granular", target_ids=[parent.pk], user=make_staff("olga"),
              params={"asset_ids": [asset.pk], "scopes": ["ads_read"]})
    (job,) = run_queued_jobs()

    text = " ".join(line["text"] for line in job.outcome)
    assert job.status == "finished" and job.outcome[0]["level"] == "error"
    assert "not in the client's current grant" in text and "reconnect" in text
    assert "3962" not in text and "AbCdEf123" not in text and "original grant" not in text
    assert AccessToken.objects.count() == 1


@pytest.mark.django_db
def test_check_now_reports_progress_per_graph_batch_and_the_totals(meta):
    tokens = [make_token(make_client(name=f"C{i}"), value=f"EAAB-check-token-{i:04d}") for i in range(60)]
    soon = datetime.now(UTC) + timedelta(days=3)
    for token in tokens:
        meta.tokens[token.value] = FakeToken(expires_at=soon)

    job = start_job("tokens.check_now", title="check", target_ids=[t.pk for t in tokens], user=make_staff("olga"))
    assert (job.items_total, job.items_done) == (60, 0)
    (job,) = run_queued_jobs()

    assert (job.items_done, job.percent()) == (60, 100)
    assert meta.calls.count("debug_tokens") == 2  # 50 + 10: progress moved after each batch
    assert job.outcome[0]["text"].startswith("Checked 60: 0 active, 60 expiring, 0 invalid")
