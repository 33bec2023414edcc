"""Helpers for the simulator's own tests: everything goes over real HTTP to the live server."""

from __future__ import annotations

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
