"""Bad input to the public pages and Meta's endpoints: a clear 4xx, never a 5xx, and a refusal writes nothing.

The first tests pin what a fuzzer found (PostgreSQL refuses NUL in text; a signed webhook's
``changes`` need not be a list). The property-based tests (hypothesis, profile in the root
conftest) throw arbitrary paths, query strings, headers and bodies at every public endpoint.
"""

import json
import time
from urllib.parse import quote, urlencode

import pytest
from django.apps import apps
from django.conf import settings
from hypothesis import given
from hypothesis import strategies as st

from graph.signatures import make_signed_request, webhook_signature
from onboarding.models import DataDeletionRequest, WebhookDelivery

pytestmark = pytest.mark.django_db

PORTAL_APPS = ("onboarding", "tokens", "verification", "sessions")


def row_counts() -> dict[str, int]:
    """Rows per table of the portal's apps (and sessions): what a refused request must not change."""
    return {
        model._meta.label: model.objects.count()
        for app in PORTAL_APPS
        for model in apps.get_app_config(app).get_models()
    }


def signed_body(payload) -> str:
    return make_signed_request(payload, settings.META_APP_SECRET)


def fresh(**fields) -> dict:
    return {"algorithm": "HMAC-SHA256", "issued_at": int(time.time()), **fields}


def post_webhook(client, body: bytes, signature: str | None = None):
    signature = webhook_signature(body, settings.META_APP_SECRET) if signature is None else signature
    return client.post("/meta/webhooks/", body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature)


# --- what the fuzzer found ---------------------------------------------------------------------


def test_a_deletion_status_link_with_a_nul_is_a_400_not_a_500(client):
    response = client.get("/meta/data-deletion/%00/")
    assert response.status_code == 400


def test_a_deletion_status_link_that_cannot_be_a_code_is_not_found(client):
    assert client.get("/meta/data-deletion/" + "x" * 3000 + "/").status_code == 404
    assert client.get("/meta/data-deletion/ünïcode/").status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"object": "permissions\u0000", "entry": []},
        {"object": "permissions", "entry": [{"id": "1", "changes": [{"field": "ads_read\u0000", "value": {}}]}]},
        {"object": "x", "entry": [{"changes": 5}]},
        {"object": "x", "entry": [{"changes": {"field": "not a list"}}]},
        {"object": "x", "entry": [{"changes": True}]},
    ],
    ids=["nul-in-object", "nul-in-field", "changes-int", "changes-dict", "changes-bool"],
)  # fmt: skip
def test_a_signed_webhook_meta_would_never_send_is_refused_with_a_400_and_stored_nowhere(client, payload):
    before = row_counts()
    response = post_webhook(client, json.dumps(payload).encode())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_payload"
    assert row_counts() == before


def test_a_revoked_permission_whose_targets_are_not_a_list_counts_as_every_target(client):
    payload = {"object": "permissions", "entry": [{"uid": "1", "changes": [
        {"field": "ads_read", "value": {"verb": "revoked", "target_ids": 7}}]}]}  # fmt: skip
    response = post_webhook(client, json.dumps(payload).encode())
    assert response.status_code == 200 and WebhookDelivery.objects.count() == 1


@pytest.mark.parametrize("path", ["/meta/deauthorize/", "/meta/data-deletion/"])
@pytest.mark.parametrize("user_id", ["12\u000034", "", " ", "12 34", "x" * 40, None, [1], {"a": 1}, True, 1.5])
def test_a_signed_request_whose_user_id_meta_would_never_send_is_a_400(client, path, user_id):
    before = row_counts()
    response = client.post(path, {"signed_request": signed_body(fresh(user_id=user_id))})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed"
    assert row_counts() == before


def test_a_numeric_user_id_still_works_as_a_number_or_a_string(client):
    as_number = client.post("/meta/deauthorize/", {"signed_request": signed_body(fresh(user_id=4242))})
    as_string = client.post("/meta/data-deletion/", {"signed_request": signed_body(fresh(user_id="4242"))})
    assert (as_number.status_code, as_string.status_code) == (200, 200)
    assert DataDeletionRequest.objects.count() == 1


def test_a_user_agent_with_a_nul_does_not_break_starting_the_login(client, client_business):
    from onboarding.invitations import create_invitation
    from testsupport.factories import make_configuration

    _, key = create_invitation(client_business, make_configuration())
    page = client.get(f"/invite/{key}/")
    response = client.post(
        "/connect/start/", {"invitation": page.context["invitation"].pk}, HTTP_USER_AGENT="Mozilla\u0000/5.0"
    )
    assert response.status_code == 302


# --- properties --------------------------------------------------------------------------------

# Text as a client could send it: any unicode, with NUL and overlong strings made likely.
any_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.sampled_from("\x00\x01\r\n\t%/?#&=;.é😀 "), max_size=40),
    st.integers(min_value=200, max_value=6000).map(lambda n: "a" * n),
)
header_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=300)
headers = st.dictionaries(
    st.sampled_from(
        ["HTTP_USER_AGENT", "HTTP_REFERER", "HTTP_ACCEPT_LANGUAGE", "HTTP_X_FORWARDED_FOR", "HTTP_X_REQUEST_ID",
         "HTTP_COOKIE", "HTTP_ACCEPT", "HTTP_X_HUB_SIGNATURE_256", "HTTP_ORIGIN"]
    ),
    header_text,
    max_size=4,
)  # fmt: skip
query = st.lists(st.tuples(any_text, any_text), max_size=5).map(urlencode)
raw_query = st.text(max_size=200).map(lambda text: quote(text, safe="=&"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(autouse=True)
def no_rate_limits(settings):
    """These tests are about input, not volume: every example reaches the view."""
    settings.RATE_LIMITS_ENABLED = False


def assert_handled(response, before: dict) -> None:
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        assert row_counts() == before


@given(segment=any_text, query=query | raw_query, headers=headers)
def test_invitation_and_reconnect_links_never_fail_and_refusals_write_nothing(client, segment, query, headers):
    before = row_counts()
    assert_handled(client.get(f"/invite/{quote(segment, safe='')}/?{query}", **headers), before)


@given(params=st.dictionaries(st.sampled_from(["code", "state", "error", "error_reason", "error_code",
                                               "error_description", "other"]), any_text), headers=headers)
def test_the_oauth_callback_never_fails_and_refusals_write_nothing(client, params, headers):
    before = row_counts()
    assert_handled(client.get(f"/connect/callback/?{urlencode(params)}", **headers), before)


@given(invitation=any_text, headers=headers)
def test_starting_the_login_never_fails(client, invitation, headers):
    before = row_counts()
    assert_handled(client.post("/connect/start/", {"invitation": invitation}, **headers), before)


@given(segment=any_text, query=raw_query, headers=headers)
def test_the_deletion_status_page_never_fails_and_writes_nothing(client, segment, query, headers):
    before = row_counts()
    response = client.get(f"/meta/data-deletion/{quote(segment, safe='')}/?{query}", **headers)
    assert response.status_code < 500
    assert row_counts() == before


@given(body=st.binary(max_size=500) | json_values.map(lambda value: json.dumps(value).encode()),
       signature=header_text, headers=headers)  # fmt: skip
def test_unsigned_webhooks_are_refused_and_write_nothing(client, body, signature, headers):
    before = row_counts()
    response = post_webhook(client, body, signature=signature)
    assert response.status_code == 403
    assert row_counts() == before


webhook_payloads = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"object": any_text | json_values, "entry": st.lists(st.fixed_dictionaries(
            {"id": any_text | json_values, "uid": any_text | json_values,
             "changes": json_values | st.lists(st.fixed_dictionaries(
                 {"field": st.sampled_from(["business_integration_uninstall", "business_integration_install",
                                            "business_integration_update", "ads_read"]) | any_text,
                  "value": json_values | st.fixed_dictionaries(
                      {"verb": st.sampled_from(["granted", "revoked"]) | json_values,
                       "target_ids": json_values, "business_id": json_values, "config_id": json_values})}),
                 max_size=3)}), max_size=3) | json_values}
    ),
)  # fmt: skip


@given(payload=webhook_payloads, headers=headers)
def test_signed_webhooks_of_any_shape_never_fail_and_refusals_write_nothing(client, payload, headers):
    before = row_counts()
    response = client.post(
        "/meta/webhooks/", json.dumps(payload).encode(), content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=webhook_signature(json.dumps(payload).encode(), settings.META_APP_SECRET),
        **{name: value for name, value in headers.items() if name != "HTTP_X_HUB_SIGNATURE_256"},
    )  # fmt: skip
    assert_handled(response, before)


@given(path=st.sampled_from(["/meta/deauthorize/", "/meta/data-deletion/"]), value=any_text, headers=headers)
def test_unsigned_deauthorize_and_data_deletion_are_refused_and_write_nothing(client, path, value, headers):
    before = row_counts()
    response = client.post(path, {"signed_request": value}, **headers)
    assert response.status_code == 400
    assert row_counts() == before


@given(
    path=st.sampled_from(["/meta/deauthorize/", "/meta/data-deletion/"]),
    payload=st.one_of(
        json_values,
        st.fixed_dictionaries({"algorithm": st.just("HMAC-SHA256") | json_values,
                               "issued_at": st.just(int(time.time())) | json_values,
                               "user_id": json_values}),
    ),
)  # fmt: skip
def test_signed_deauthorize_and_data_deletion_of_any_payload_never_fail(client, path, payload):
    before = row_counts()
    assert_handled(client.post(path, {"signed_request": signed_body(payload)}), before)
