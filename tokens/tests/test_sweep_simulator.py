"""The sweep against the simulator over real HTTP: batching, faults, managed-account migration."""

import math

import pytest

from tokens.install import granted_assets, install_token
from tokens.meta import graph_client
from tokens.models import AccessToken, AssetGrant
from tokens.sweep import check_tokens, start_sweep
from tokens.tests.helpers import make_client, make_configuration

pytestmark = pytest.mark.django_db(transaction=True)

ACME = "9100000000000001"
ALICE = "1000000000000001"


def onboard(meta, client, *, person_id=ALICE, business_id=ACME, token_type="user", asset_ids=None, contact=None):
    value = meta.api.issue_token(
        token_type=token_type, business_id=business_id, person_id=person_id, asset_ids=asset_ids
    )
    graph = graph_client()
    info = graph.debug_token(value)
    system_user_id = info.user_id if token_type != "user" else None
    assets = granted_assets(info.granular_scopes, graph.list_assets(value, system_user_id=system_user_id))
    return install_token(
        client=client,
        configuration=make_configuration(token_type=token_type),
        kind=AccessToken.Kind.USER if token_type == "user" else AccessToken.Kind.SYSTEM_USER,
        value=value,
        info=info,
        assets=assets,
        granted_by=contact,
    ).token


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
