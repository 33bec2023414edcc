import json
import time

import pytest
from django.conf import settings

from graph.signatures import make_signed_request, webhook_signature
from onboarding.models import ClientBusiness, Contact, DataDeletionRequest, Invitation, WebhookDelivery
from testsupport.fake_graph import FakeGraph
from tokens.install import GrantedAsset, install_token
from tokens.models import AccessToken, AssetGrant, TokenEvent

from .conftest import acme_token, make_info, snapshot

pytestmark = pytest.mark.django_db

PERSON = "4242"


@pytest.fixture
def connected(client_business, contact, user_config):
    """A client connected through a user token granted by `contact` (Meta user 4242)."""
    contact.meta_user_id = PERSON
    contact.save()
    client_business.meta_business_id = "7001"
    client_business.status = "active"
    client_business.save()
    info = make_info(type="USER", user_id=PERSON, scopes=["pages_show_list", "pages_read_engagement"])
    result = install_token(
        client=client_business,
        configuration=user_config,
        kind="user",
        value="EAAB-user-token",
        info=info,
        assets=[
            GrantedAsset("page", "201", "Acme Page", scopes=["pages_read_engagement", "pages_show_list"]),
            GrantedAsset("page", "202", "Cakes Page", scopes=["pages_read_engagement"]),
        ],
        granted_by=contact,
    )
    return result.token


def signed(payload: dict) -> str:
    return make_signed_request(payload, settings.META_APP_SECRET)


def fresh(**extra) -> dict:
    return {"algorithm": "HMAC-SHA256", "issued_at": int(time.time()), "user_id": PERSON} | extra


# --- deauthorize -----------------------------------------------------------------------------


def test_deauthorize_revokes_the_person_s_tokens_and_records_it(client, connected):
    response = client.post("/meta/deauthorize/", {"signed_request": signed(fresh())})
    assert response.status_code == 200 and response.json()["tokens_revoked"] == 1
    connected.refresh_from_db()
    assert connected.status == "revoked" and connected.revoked_at is not None
    assert set(AssetGrant.objects.values_list("status", flat=True)) == {"revoked"}
    assert TokenEvent.objects.filter(kind="revoked", token=connected, actor="meta").count() == 1
    assert ClientBusiness.objects.get().status == "disconnected"


def test_deauthorize_twice_changes_nothing_the_second_time(client, connected):
    client.post("/meta/deauthorize/", {"signed_request": signed(fresh())})
    before = snapshot()
    assert client.post("/meta/deauthorize/", {"signed_request": signed(fresh())}).json()["tokens_revoked"] == 0
    assert snapshot() == before


def tampered() -> str:
    signature, _ = signed(fresh()).split(".")
    _, other = signed(fresh(user_id="999")).split(".")
    return f"{signature}.{other}"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (lambda: tampered(), "bad_signature"),
        (lambda: make_signed_request(fresh(), "not-our-secret"), "bad_signature"),
        (lambda: signed(fresh(algorithm="HMAC-SHA1")), "unsupported_algorithm"),
        (lambda: signed(fresh(issued_at=int(time.time()) - 2 * 86400)), "stale"),
        (lambda: "not-a-signed-request", "malformed"),
        (lambda: "", "malformed"),
    ],
)
@pytest.mark.parametrize("path", ["/meta/deauthorize/", "/meta/data-deletion/"])
def test_a_bad_signed_request_gets_400_and_changes_nothing(client, connected, path, value, reason):
    before = snapshot()
    response = client.post(path, {"signed_request": value()})
    assert response.status_code == 400
    assert response.json()["error"]["reason"] == reason
    assert snapshot() == before
    assert DataDeletionRequest.objects.count() == 0


def test_a_signed_request_without_a_user_id_gets_400(client, connected):
    body = fresh()
    del body["user_id"]
    assert client.post("/meta/deauthorize/", {"signed_request": signed(body)}).status_code == 400


def test_the_callbacks_accept_only_post(client):
    assert client.get("/meta/deauthorize/").status_code == 405
    assert client.get("/meta/data-deletion/").status_code == 405


# --- data deletion ---------------------------------------------------------------------------


def test_data_deletion_purges_tokens_and_personal_data_and_answers_url_and_code(client, connected, contact):
    invitation = Invitation.objects.create(
        client=contact.client, configuration=connected.configuration, contact=contact, email=contact.email,
        key_hash="x" * 64, expires_at=connected.created_at,
    )  # fmt: skip
    response = client.post("/meta/data-deletion/", {"signed_request": signed(fresh())})
    assert response.status_code == 200
    answer = response.json()
    code = answer["confirmation_code"]
    assert answer["url"] == f"http://127.0.0.1:8000/meta/data-deletion/{code}/"
    token = AccessToken.objects.get()
    assert (token.value, token.fingerprint, token.meta_user_id, token.status) == (None, None, "", "revoked")
    assert not Contact.objects.filter(pk=contact.pk).exists()
    invitation.refresh_from_db()
    assert invitation.email == "" and invitation.contact is None
    deletion = DataDeletionRequest.objects.get()
    assert (deletion.status, deletion.tokens_purged, deletion.contacts_removed) == ("completed", 1, 1)
    assert PERSON not in deletion.user_hash

    status_page = client.get(f"/meta/data-deletion/{code}/")
    assert status_page.status_code == 200 and "Completed" in status_page.content.decode()


def test_data_deletion_for_someone_we_know_nothing_about_still_answers(client, db):
    response = client.post("/meta/data-deletion/", {"signed_request": signed(fresh(user_id="77"))})
    assert response.status_code == 200
    assert DataDeletionRequest.objects.get().status == "nothing_found"


def test_an_unknown_confirmation_code_gets_a_clear_404(client, db):
    response = client.get("/meta/data-deletion/nope/")
    assert response.status_code == 404 and "no deletion request" in response.content.decode()


# --- webhooks --------------------------------------------------------------------------------


def post_webhook(client, body: dict | bytes, signature: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {}
    if signature is not False:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature or webhook_signature(raw, settings.META_APP_SECRET)
    return client.post("/meta/webhooks/", raw, content_type="application/json", **headers)


def change(field: str, value: dict, entry_id: str = "100000000000001") -> dict:
    entry = {"id": entry_id, "time": 1, "changes": [{"field": field, "value": value}]}
    return {"object": "application", "entry": [entry]}


def test_the_handshake_echoes_the_challenge_only_with_our_verify_token(client):
    good = {"hub.mode": "subscribe", "hub.verify_token": settings.META_WEBHOOK_VERIFY_TOKEN, "hub.challenge": "123"}
    assert client.get("/meta/webhooks/", good).content == b"123"
    assert client.get("/meta/webhooks/", good | {"hub.verify_token": "wrong"}).status_code == 403
    assert client.get("/meta/webhooks/", good | {"hub.mode": "unsubscribe"}).status_code == 403


def test_uninstall_revokes_the_business_s_tokens(client, connected):
    response = post_webhook(client, change("business_integration_uninstall", {"business_manager_id": "7001"}))
    assert response.status_code == 200 and response.json()["revoked"] == 1
    assert AccessToken.objects.get().status == "revoked"


def test_a_tampered_webhook_gets_403_and_changes_nothing(client, connected):
    raw = json.dumps(change("business_integration_uninstall", {"business_manager_id": "7001"})).encode()
    signature = webhook_signature(raw.replace(b"7001", b"7002"), settings.META_APP_SECRET)
    before = snapshot()
    assert post_webhook(client, raw, signature).status_code == 403
    assert post_webhook(client, raw, False).status_code == 403
    assert snapshot() == before
    assert WebhookDelivery.objects.count() == 0


def test_a_replayed_webhook_is_acknowledged_and_ignored(client, connected):
    body = change("business_integration_uninstall", {"business_manager_id": "7001"})
    post_webhook(client, body)
    before = snapshot()
    replay = post_webhook(client, body)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert snapshot() == before
    assert WebhookDelivery.objects.get().duplicates == 1


def test_a_signed_body_that_is_not_a_notification_gets_400(client, connected):
    assert post_webhook(client, b"not json").status_code == 400
    assert post_webhook(client, {"entry": "nope"}).status_code == 400
    assert WebhookDelivery.objects.count() == 0


def test_a_revoked_permission_marks_the_grants_it_affects(client, connected):
    revoked = {"field": "pages_read_engagement", "value": {"verb": "revoked"}}
    body = {"object": "permissions", "entry": [{"id": PERSON, "uid": PERSON, "time": 1, "changes": [revoked]}]}
    assert post_webhook(client, body).json()["grants_marked"] == 2
    grants = {g.asset.meta_id: g for g in AssetGrant.objects.select_related("asset")}
    assert grants["201"].status == "active" and grants["201"].scopes == ["pages_show_list"]
    assert grants["202"].status == "permission_removed"  # not dead: the person can grant it again
    token = AccessToken.objects.get()
    assert "pages_read_engagement" not in token.scopes
    assert token.missing_permissions == ["pages_read_engagement"] and token.status == "active"
    assert "Permission removed: pages_read_engagement" in token.status_reason


def test_an_update_re_reads_the_tokens_assets(client, connected, monkeypatch):
    graph = FakeGraph()
    graph.answer(
        acme_token(
            type="USER",
            user_id=PERSON,
            granular_scopes=[],
            assets={"201": ("page", "Acme Page", None), "203": ("page", "New Page", None)},
        ),
        value="EAAB-user-token",
    )
    monkeypatch.setattr("common.meta.graph_client", lambda: graph)
    response = post_webhook(client, change("business_integration_update", {"business_manager_id": "7001"}))
    assert response.json()["refreshed"] == 1
    statuses = dict(AssetGrant.objects.values_list("asset__meta_id", "status"))
    assert statuses == {"201": "active", "202": "removed", "203": "active"}
    assert WebhookDelivery.objects.get().summary["refreshed"] == 1


def test_an_update_asks_meta_outside_the_transaction_that_records_the_delivery(client, connected, monkeypatch):
    from django.db import connection

    depth_of_the_test = len(connection.atomic_blocks)  # the test's own transaction
    graph = FakeGraph()
    graph.answer(acme_token(type="USER", user_id=PERSON, granular_scopes=[]), value="EAAB-user-token")
    depths = []
    original = graph.debug_token
    graph.debug_token = lambda value: depths.append(len(connection.atomic_blocks)) or original(value)
    monkeypatch.setattr("common.meta.graph_client", lambda: graph)
    post_webhook(client, change("business_integration_update", {"business_manager_id": "7001"}))
    assert depths == [depth_of_the_test]
