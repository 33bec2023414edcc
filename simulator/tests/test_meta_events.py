"""Events Meta causes: managed-account migration, app removal with signed callbacks."""

import base64
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from simulator import api
from simulator.tests.conftest import graph_call, live

pytestmark = live

ACME = "9100000000000001"
PAGE_1 = api.asset_id_for("page", 1, 1)


def get(meta, http, path, token, **params):
    return graph_call(meta, http, path, token, data=params)


def test_after_migration_personal_grants_show_an_expiry_thirty_days_ahead(meta, http, time_machine):
    time_machine.move_to("2026-11-23T12:00:00Z", tick=False)
    user_token = api.issue_token(token_type="user", person_id="1000000000000001", asset_ids=[PAGE_1])
    system_token = api.issue_token(asset_ids=[PAGE_1])
    ends = api.migrate_to_managed_accounts(ACME)
    assert ends == datetime(2026, 12, 23, 12, 0, tzinfo=UTC)
    fields = "id,user_access_expire_time"
    personal = get(meta, http, PAGE_1, user_token, fields=fields).json()
    system = get(meta, http, PAGE_1, system_token, fields=fields).json()
    assert personal["user_access_expire_time"] == "2026-12-23T12:00:00+0000"
    assert "user_access_expire_time" not in system
    listed = get(meta, http, "me/accounts", user_token, fields=fields).json()["data"]
    assert listed[0]["user_access_expire_time"] == personal["user_access_expire_time"]


def test_managed_accounts_keep_their_access(meta, http):
    token = api.issue_token(token_type="user", person_id="1000000000000004", asset_ids=[PAGE_1])
    api.migrate_to_managed_accounts(ACME)
    body = get(meta, http, PAGE_1, token, fields="id,user_access_expire_time").json()
    assert "user_access_expire_time" not in body


def test_personal_access_ends_when_the_grace_period_is_over(meta, http):
    token = api.issue_token(token_type="user", person_id="1000000000000001", asset_ids=[PAGE_1])
    api.migrate_to_managed_accounts(ACME)
    api.advance_clock(30 * 86400 + 1)
    assert get(meta, http, PAGE_1, token).json()["error"]["error_subcode"] == 33
    assert get(meta, http, "me/accounts", token).json()["data"] == []


class Capture(BaseHTTPRequestHandler):
    received: list

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.received.append((self.path, dict(self.headers), self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format, *args):
        pass


@pytest.fixture
def capture_server():
    received: list = []
    handler = type("Handler", (Capture,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def test_removing_the_app_kills_tokens_and_sends_signed_callbacks(meta, http, capture_server):
    url, received = capture_server
    api.register_app(
        meta.app_id,
        meta.app_secret,
        [meta.redirect_uri],
        deauthorize_url=f"{url}/meta/deauthorize/",
        webhook_url=f"{url}/meta/webhooks/",
    )
    api.register_configuration("5550001", "system_user", ["business_management"], ["page"])
    token = api.issue_token(business_id=ACME, person_id="1000000000000002", config_id="5550001")

    deliveries = api.remove_app(ACME)

    assert [d.status_code for d in deliveries] == [200, 200]
    error = graph_call(meta, http, "me", token).json()["error"]
    assert (error["code"], error["error_subcode"]) == (190, 458)

    (deauth_path, _, deauth_body), (hook_path, hook_headers, hook_body) = received
    assert deauth_path == "/meta/deauthorize/"
    signed = parse_qs(deauth_body.decode())["signed_request"][0]
    signature, payload = signed.split(".")
    expected = hmac.new(meta.app_secret.encode(), payload.encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(b64url_decode(signature), expected)
    claims = json.loads(b64url_decode(payload))
    assert claims["algorithm"] == "HMAC-SHA256"
    assert claims["user_id"] == "1000000000000002"
    assert isinstance(claims["issued_at"], int)

    assert hook_path == "/meta/webhooks/"
    digest = hmac.new(meta.app_secret.encode(), hook_body, hashlib.sha256).hexdigest()
    assert hook_headers["X-Hub-Signature-256"] == f"sha256={digest}"
    change = json.loads(hook_body)["entry"][0]["changes"][0]
    assert change["field"] == "business_integration_uninstall"
    assert change["value"] == {"business_manager_id": ACME, "tp_config_id": "5550001"}


def test_an_unreachable_callback_is_recorded_not_raised(meta):
    api.register_app(meta.app_id, meta.app_secret, [meta.redirect_uri], webhook_url="http://127.0.0.1:9/nowhere")
    api.issue_token(business_id=ACME)
    (delivery,) = api.remove_app(ACME)
    assert delivery.status_code is None
    assert delivery.error


def verify_signed_request(signed: str, secret: str) -> dict:
    signature, payload = signed.split(".")
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(b64url_decode(signature), expected)
    return json.loads(b64url_decode(payload))


def test_a_data_deletion_request_posts_a_signed_request_and_keeps_the_answer(meta, capture_server):
    url, received = capture_server
    api.register_app(meta.app_id, meta.app_secret, [meta.redirect_uri], data_deletion_url=f"{url}/meta/data-deletion/")
    delivery = api.request_data_deletion("1000000000000001")
    assert (delivery.status_code, delivery.response_body) == (200, "{}")
    ((path, _, body),) = received
    assert path == "/meta/data-deletion/"
    claims = verify_signed_request(parse_qs(body.decode())["signed_request"][0], meta.app_secret)
    assert claims["user_id"] == "1000000000000001"


def test_changing_a_business_assets_updates_tokens_and_sends_the_update_webhook(meta, http, capture_server):
    url, received = capture_server
    api.register_app(meta.app_id, meta.app_secret, [meta.redirect_uri], webhook_url=f"{url}/meta/webhooks/")
    page_2 = api.asset_id_for("page", 1, 2)
    token = api.issue_token(business_id=ACME, asset_ids=[PAGE_1])
    api.change_business_assets(ACME, add=[page_2], remove=[PAGE_1])
    assert get(meta, http, page_2, token).status_code == 200
    assert get(meta, http, PAGE_1, token).status_code == 400
    ((_, headers, body),) = received
    assert headers["X-Hub-Signature-256"] == "sha256=" + hmac.new(meta.app_secret.encode(), body, "sha256").hexdigest()
    change = json.loads(body)["entry"][0]["changes"][0]
    assert change["field"] == "business_integration_update"
    assert change["value"]["business_manager_id"] == ACME
    assert change["value"]["assets_added"] == [page_2]


def test_a_password_change_kills_the_persons_user_tokens_with_460(meta, http):
    token = api.issue_token(token_type="user", person_id="1000000000000002")
    system_token = api.issue_token(person_id="1000000000000002")
    api.invalidate_person_tokens("1000000000000002")
    assert get(meta, http, "me", token).json()["error"]["error_subcode"] == 460
    assert get(meta, http, "me", system_token).status_code == 200


def test_notify_install_sends_the_install_webhook_with_the_configuration(meta, capture_server):
    url, received = capture_server
    api.register_app(meta.app_id, meta.app_secret, [meta.redirect_uri], webhook_url=f"{url}/meta/webhooks/")
    api.register_configuration("5550009", "system_user", ["business_management"], ["page"])
    api.issue_token(business_id=ACME, config_id="5550009")
    assert api.notify_install(ACME).status_code == 200
    ((_, _, body),) = received
    change = json.loads(body)["entry"][0]["changes"][0]
    assert change == {
        "field": "business_integration_install",
        "value": {"business_manager_id": ACME, "tp_config_id": "5550009"},
    }
