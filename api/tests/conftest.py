"""The API through a live server on PostgreSQL: credentials, a caller, a world of clients and tokens."""

from __future__ import annotations

import pytest
import requests

from api.credentials import create_credential
from api.models import Scope

ALL_SCOPES = tuple(Scope.values)


class Caller:
    """Requests to the live API with a credential's secret (or none)."""

    def __init__(self, base_url: str, secret: str | None = None):
        self.base_url, self.secret = base_url, secret
        self.session = requests.Session()

    def with_secret(self, secret: str | None) -> Caller:
        return Caller(self.base_url, secret)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.secret is not None:
            headers.setdefault("Authorization", f"Bearer {self.secret}")
        return self.session.request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)


@pytest.fixture
def api_base(live_server, postgres_required) -> str:
    return live_server.url


@pytest.fixture
def credential_factory(transactional_db):
    def make(name: str = "Publisher", scopes=ALL_SCOPES, **limits):
        return create_credential(name, scopes, **limits)

    return make


@pytest.fixture
def caller(api_base) -> Caller:
    return Caller(api_base)


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]
