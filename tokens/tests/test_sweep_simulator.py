"""The sweep against the simulator over real HTTP: batching, faults, managed-account migration."""

import math
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from common.meta import graph_client
from graph.client import GraphClient
from testsupport.factories import install_simulated_token, make_client
from tokens.models import AccessToken, AssetGrant
from tokens.sweep import check_tokens, start_sweep

pytestmark = pytest.mark.django_db(transaction=True)

ACME = "9100000000000001"
ALICE = "1000000000000001"


def onboard(meta, client, *, person_id=ALICE, business_id=ACME, token_type="user", asset_ids=None, contact=None):
    return install_simulated_token(
        meta, client, token_type=token_type, contact=contact, business_id=business_id, person_id=person_id,
        asset_ids=asset_ids,
    )  # fmt: skip


def run_sweep(**kwargs):
    run, chunks = start_sweep(**kwargs)
    return run, [check_tokens(chunk, run_id=run.pk) for chunk in chunks]


def test_the_sweep_sees_user_access_expire_time_after_a_managed_account_migration(simulated_meta):
    client = make_client(meta_business_id=None)
    token = onboard(simulated_meta, client)
    assert token.grants.count() > 0
    ends = simulated_meta.api.migrate_to_managed_accounts(ACME).replace(microsecond=0)

    run, (result,) = run_sweep()

    assert result.checked == 1
    ending = AssetGrant.objects.filter(token=token, user_access_expire_time=ends)
    assert ending.exists()
    assert set(ending.values_list("status", flat=True)) == {"expiring"}


def test_http_requests_grow_with_tokens_over_fifty_not_with_assets(simulated_meta):
    tokens = [onboard(simulated_meta, make_client(meta_business_id=None)) for _ in range(3)]
    assets = AssetGrant.objects.filter(token__in=tokens).count()
    before = simulated_meta.api.request_count()

    run_sweep()

    sent = simulated_meta.api.request_count() - before
    assert sent <= math.ceil(assets / 50) + math.ceil(len(tokens) / 50)


def quick_client() -> GraphClient:
    """The settings' client, without real sleeping between retries (faults come fast here)."""
    return graph_client(max_retries=2, sleep=lambda seconds: None)


@pytest.mark.parametrize("seed", [7])
def test_faults_never_mark_a_token_invalid_and_everything_is_checked_once_they_stop(simulated_meta, seed):
    tokens = [onboard(simulated_meta, make_client(meta_business_id=None)) for _ in range(8)]
    dead = tokens[:2]
    for token in dead:
        simulated_meta.api.invalidate_token(token.value, subcode=460)
    simulated_meta.api.set_faults(error_rate=0.3, timeout_rate=0.2, rate_limit_rate=0.1, seed=seed)

    run, chunks = start_sweep(chunk_size=3)
    results = [
        check_tokens(chunk, run_id=run.pk, client=quick_client(), sleep=lambda seconds: None) for chunk in chunks
    ]
    assert sum(r.errors + r.deferred for r in results) > 0  # the faults did hit

    alive = AccessToken.objects.filter(pk__in=[t.pk for t in tokens[2:]])
    assert set(alive.values_list("status", flat=True)) <= {"active", "expiring"}

    simulated_meta.api.clear_faults()
    later = timezone.now() + timedelta(days=2)
    with time_machine.travel(later, tick=False):
        run, chunks = start_sweep()
        for chunk in chunks:
            check_tokens(chunk, run_id=run.pk, client=quick_client())

    assert set(alive.values_list("status", flat=True)) == {"active"}
    assert set(alive.values_list("last_checked_at", flat=True)) == {later}
    assert set(alive.values_list("consecutive_check_failures", flat=True)) == {0}
    assert set(
        AccessToken.objects.filter(pk__in=[t.pk for t in dead]).values_list("status", "error_code", "error_subcode")
    ) == {("invalid", 190, 460)}
