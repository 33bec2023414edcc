"""Sessions follow the environment's proxies and CA bundles without reading it on every call (D90)."""

from __future__ import annotations

import pytest

from graph.client import GraphClient

PROXIES = ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "no_proxy"]
BUNDLES = ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]


@pytest.fixture
def bare_environment(monkeypatch):
    for name in PROXIES + BUNDLES:
        for spelling in {name, name.lower(), name.upper()}:
            monkeypatch.delenv(spelling, raising=False)
    return monkeypatch


def session():
    return GraphClient(app_id="1", app_secret="s", version="v23.0", graph_url="http://127.0.0.1:9").session


def test_without_proxies_or_bundles_the_session_reads_nothing_of_the_environment(bare_environment):
    made = session()
    assert made.trust_env is False and made.verify is True


@pytest.mark.parametrize("names,expected", [
    (["REQUESTS_CA_BUNDLE"], "/etc/ssl/requests.pem"),
    (["CURL_CA_BUNDLE"], "/etc/ssl/curl.pem"),
    (["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"], "/etc/ssl/requests.pem"),  # requests' own precedence
])
def test_a_ca_bundle_is_read_once_into_the_session(bare_environment, names, expected):
    for name in names:
        bare_environment.setenv(name, f"/etc/ssl/{name.split('_')[0].lower()}.pem")
    made = session()
    assert made.trust_env is False and made.verify == expected


@pytest.mark.parametrize("name", PROXIES)
def test_a_proxy_makes_the_session_follow_the_environment_as_requests_does(bare_environment, name):
    bare_environment.setenv(name, "http://proxy.internal:3128")
    assert session().trust_env is True


def test_forwarded_calls_go_straight_to_urllib3_unless_a_proxy_is_named(bare_environment):
    bare_environment.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/requests.pem")
    direct = GraphClient(app_id="1", app_secret="s", graph_url="http://127.0.0.1:9")._direct
    assert direct is not None and direct.connection_pool_kw["ca_certs"] == "/etc/ssl/requests.pem"

    bare_environment.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert GraphClient(app_id="1", app_secret="s", graph_url="http://127.0.0.1:9")._direct is None
