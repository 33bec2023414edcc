"""Credentials through the live API: missing, wrong, revoked -> 401; out of scope -> 403; limited to other
clients -> 404; every refusal JSON, changing nothing but the audit row."""

from __future__ import annotations

import re

import pytest

from api.credentials import revoke
from api.main import api
from api.models import ApiUse, Scope, ServiceCredential
from testsupport.factories import make_asset, make_client, make_grant, make_token

from .conftest import ALL_SCOPES, assert_error

pytestmark = pytest.mark.django_db(transaction=True)


def scoped_operations() -> list[tuple[str, str, str]]:
    """(method, path with every parameter filled, scope) for every endpoint registered that needs a scope."""
    found = []
    for path, operations in api.get_openapi_schema()["paths"].items():
        for method, operation in operations.items():
            if operation.get("x-scope"):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path), operation["x-scope"]))
    return found


def test_every_scoped_endpoint_is_found_and_every_scope_is_known():
    operations = scoped_operations()
    assert ("GET", "/api/v1/assets/1/token", Scope.TOKENS_READ) in operations
    assert {scope for _, _, scope in operations} <= set(Scope.values)


@pytest.mark.parametrize("method,path,scope", scoped_operations())
def test_every_scope_is_refused_when_absent(caller, credential_factory, method, path, scope):
    _, secret = credential_factory("Everything but", [other for other in ALL_SCOPES if other != scope])
    before = ServiceCredential.objects.get().last_used_at

    refused = caller.with_secret(secret).request(method, path, json={})

    error = assert_error(refused, 403, "insufficient_scope")
    assert error["scope"] == scope and scope in error["message"]
    assert ServiceCredential.objects.get().last_used_at == before
    assert list(ApiUse.objects.values_list("status_code", "outcome")) == [(403, "insufficient_scope")]


@pytest.mark.parametrize("method,path,scope", scoped_operations())
def test_every_endpoint_refuses_a_request_without_a_credential(caller, method, path, scope):
    refused = caller.request(method, path, json={})
    assert_error(refused, 401, "unauthenticated")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_or_malformed_secret_is_refused(caller, credential_factory):
    credential_factory()
    for header in ("Bearer svc_not-a-secret-of-ours", "Bearer ", "Basic dXNlcjpwYXNz", "svc_x", "Bearer \u00e9"):
        refused = caller.get("/api/v1/credential", headers={"Authorization": header})
        assert refused.status_code == 401, header
        assert refused.json()["error"]["code"] in ("unauthenticated", "invalid_credential")
    assert ApiUse.objects.count() == 0


def test_a_revoked_credential_is_refused_at_once(caller, credential_factory):
    credential, secret = credential_factory()
    assert caller.with_secret(secret).get("/api/v1/credential").status_code == 200

    revoke([credential.pk], by="staff:ana")
    refused = caller.with_secret(secret).get("/api/v1/credential")

    assert_error(refused, 401, "credential_revoked")
    assert revoke([credential.pk], by="staff:ana") == 0  # idempotent


def test_the_credential_endpoint_shows_its_scopes_and_limits_and_records_the_use(caller, credential_factory):
    acme = make_client()
    credential, secret = credential_factory("Catalog sync", [Scope.HEALTH_READ], clients=[acme])

    answer = caller.with_secret(secret).get("/api/v1/credential")

    assert answer.status_code == 200
    assert answer.json() | {"created_at": None} == {
        "name": "Catalog sync", "scopes": ["health:read"], "client_ids": [acme.pk], "configuration_ids": None,
        "created_at": None}
    use = ApiUse.objects.get()
    assert (use.credential, use.action, use.method, use.status_code, use.outcome) == (
        credential, "credential", "GET", 200, "ok")
    credential.refresh_from_db()
    assert credential.last_used_at is not None


def test_audit_rows_outlive_their_client_and_keep_their_credential(credential_factory):
    """The rows have no foreign keys in the database (D90): Django's on_delete still holds."""
    from django.db.models import ProtectedError

    client = make_client("Gone soon")
    credential, _ = credential_factory("Catalog sync", [Scope.HEALTH_READ])
    use = ApiUse.objects.create(credential=credential, client=client, action="client_health", method="GET",
                                status_code=200, outcome="ok")

    client.delete()
    use.refresh_from_db()
    assert use.client_id is None and use.credential == credential
    with pytest.raises(ProtectedError):
        credential.delete()


def test_a_credential_limited_to_client_a_gets_404_for_client_b_assets(caller, credential_factory):
    client_a, client_b = make_client("A"), make_client("B")
    asset_a = make_asset(client_a, meta_id="1001")
    asset_b = make_asset(client_b, meta_id="2002")
    make_grant(make_token(client_a), asset_a)
    make_grant(make_token(client_b), asset_b)
    _, secret = credential_factory("Only A", [Scope.TOKENS_READ], clients=[client_a])
    limited = caller.with_secret(secret)

    own = limited.get("/api/v1/assets/1001/token")
    other = limited.get("/api/v1/assets/2002/token")
    nowhere = limited.get("/api/v1/assets/3003/token")

    assert own.status_code == 200
    assert assert_error(other, 404, "asset_not_found") == assert_error(nowhere, 404, "asset_not_found")
    assert "access_token" not in other.text


def test_a_credential_limited_to_a_configuration_uses_only_its_tokens(caller, credential_factory):
    acme = make_client()
    page = make_asset(acme, meta_id="1001")
    user_token = make_token(acme)
    make_grant(user_token, page)
    other_configuration_token = make_token(acme, kind="system_user")
    make_grant(other_configuration_token, page)
    _, secret = credential_factory("User tokens only", [Scope.TOKENS_READ],
                                   configurations=[user_token.configuration])

    answer = caller.with_secret(secret).get("/api/v1/assets/1001/token")

    assert answer.status_code == 200 and answer.json()["token_id"] == user_token.pk


def test_refusals_and_errors_are_json_in_one_shape(caller, credential_factory):
    _, secret = credential_factory()
    authorized = caller.with_secret(secret)

    assert_error(caller.get("/api/v1/nowhere"), 404, "not_found")
    assert_error(caller.get("/api/v1/nowhere/"), 404, "not_found")
    assert_error(caller.get("/api/"), 404, "not_found")
    assert_error(caller.get("/api/v1/"), 404, "not_found")
    assert_error(caller.request("POST", "/api/v1/nowhere"), 404, "not_found")  # no CSRF page for a POST
    assert_error(caller.request("DELETE", "/api/v1/graph/%0A"), 404, "not_found")  # no route matches a newline
    not_allowed = assert_error(authorized.request("DELETE", "/api/v1/credential"), 405, "method_not_allowed")
    assert "GET" in not_allowed["message"]
    invalid = assert_error(authorized.get("/api/v1/assets/not-digits/token"), 422, "invalid_request")
    assert invalid["fields"][0]["location"] == "path" and "meta_id" in invalid["message"]
    bad_scopes = assert_error(authorized.get("/api/v1/assets/1/token", params={"scopes": "ADS READ"}), 422,
                              "invalid_request")
    assert bad_scopes["fields"][0]["name"] == "scopes"


def test_rate_limits_per_address_before_authentication_and_per_credential_after(caller, credential_factory, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api-ip": "3/m", "api": "2/m"}
    _, secret = credential_factory()
    authorized = caller.with_secret(secret)

    answers = [authorized.get("/api/v1/credential").status_code for _ in range(3)]

    assert answers == [200, 200, 429]
    assert ApiUse.objects.filter(outcome="rate_limited").count() == 1
    by_address = caller.get("/api/v1/credential")  # no credential: the address's limit answers first
    assert_error(by_address, 429, "rate_limited")
    assert int(by_address.headers["Retry-After"]) >= 1


def test_the_openapi_schema_is_served_and_names_the_scope_of_each_endpoint(caller):
    schema = caller.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/assets/{meta_id}/token"]["get"]
    assert schema["openapi"].startswith("3.")
    assert operation["x-scope"] == "tokens:read" and "tokens:read" in operation["description"]
    assert {"401", "403", "404", "409", "422", "429"} <= set(operation["responses"])
    assert schema["components"]["securitySchemes"]["ServiceCredentialAuth"]["scheme"] == "bearer"
