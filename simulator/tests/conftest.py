"""Helpers for the simulator's own tests: everything goes over real HTTP to the live server."""

from __future__ import annotations

import json

import pytest
import requests

from simulator.models import SimToken

# Tests over the live server flush only the simulator's tables: flushing every table and
# recreating content types after each test costs seconds on PostgreSQL.
live = pytest.mark.django_db(transaction=True, available_apps=["simulator"])


@pytest.fixture
def meta(live_server):
    from simulator.testing import start

    return start(live_server.url)


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def graph_call(meta, http, path, token=None, *, method="GET", proof=True, data=None, params=None, headers=None):
    """Call the simulator the way our client does: token in the Authorization header, proof alongside."""
    headers = dict(headers or {})
    data = dict(data or {})
    if token:
        headers["Authorization"] = f"OAuth {token}"
        if proof:
            data["appsecret_proof"] = meta.proof(token)
    if method == "GET" and data:
        # Secrets stay out of URLs: a GET with a body is a POST with method=GET, as Meta allows.
        data["method"] = "GET"
        method = "POST"
    return http.request(method, meta.graph(path), data=data or None, params=params, headers=headers, timeout=10)


def throwaway_token(value: str, **kwargs) -> str:
    """A token whose value is not one the simulator issued, for tests that must put it in a URL
    (Meta accepts access_token in the query string; our own code never does that)."""
    from simulator import api

    issued = api.issue_token(**kwargs)
    SimToken.objects.filter(value=issued).update(value=value)
    return value


def batch_item(meta, relative_url, token=None, *, method="GET", **extra):
    """A batch item; with a token, the token and its proof ride in the item's body (never a URL)."""
    item = {"method": method, "relative_url": relative_url, **extra}
    if token:
        item["body"] = f"access_token={token}&appsecret_proof={meta.proof(token)}"
    return item


def post_batch(meta, http, items, token=None, *, path=""):
    """POST a batch (at the root, or at any node path as Meta allows); the app token by default."""
    token = token or f"{meta.app_id}|{meta.app_secret}"
    data = {"batch": json.dumps(items)}
    if "|" not in token:
        data["appsecret_proof"] = meta.proof(token)
    return http.post(meta.graph(path), data=data, headers={"Authorization": f"OAuth {token}"}, timeout=10)


def debug(meta, http, token):
    """debug_token's `data` for a token, asked with the app token (the token in the POST body)."""
    return http.post(
        meta.graph("debug_token"),
        data={"method": "GET", "input_token": token},
        headers={"Authorization": f"OAuth {meta.app_id}|{meta.app_secret}"},
        timeout=10,
    ).json()["data"]
