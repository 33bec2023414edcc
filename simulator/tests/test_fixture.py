"""The `simulated_meta` fixture other apps' tests rely on."""

import requests
from django.conf import settings


def test_simulated_meta_points_the_portal_at_a_seeded_simulator(simulated_meta, live_server):
    pointed_at = (settings.META_GRAPH_URL, settings.META_DIALOG_URL, settings.PORTAL_BASE_URL)
    base = live_server.url
    assert pointed_at == (f"{base}/simulator/graph", f"{base}/simulator/www", base)
    token = simulated_meta.api.issue_token()
    response = requests.post(
        simulated_meta.graph("me"),
        data={"method": "GET", "fields": "client_business_id", "appsecret_proof": simulated_meta.proof(token)},
        headers={"Authorization": f"OAuth {token}"},
        timeout=10,
    )
    assert response.json()["client_business_id"] == "9100000000000001"
