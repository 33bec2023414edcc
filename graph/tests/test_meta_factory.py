"""common.meta.graph_client builds the client from settings."""

from __future__ import annotations

from common.meta import graph_client


def test_the_client_is_built_from_settings(settings):
    settings.META_APP_ID = "42"
    settings.META_GRAPH_URL = "http://meta.test/graph"
    settings.META_GRAPH_VERSION = "v25.0"
    settings.META_APPSECRET_PROOF_MODE = "timestamped"
    settings.META_HTTP_TIMEOUT = 7.0
    settings.META_HTTP_MAX_RETRIES = 1
    settings.META_HTTP_BACKOFF_CAP = 9.0

    with graph_client() as client:
        assert (client.app_id, client.graph_url, client.version) == ("42", "http://meta.test/graph", "v25.0")
        assert client.proof_mode == "timestamped"
        assert client.timeout == (5.0, 7.0)
        assert (client.max_retries, client.backoff_cap) == (1, 9.0)
        assert client.dialog_url("c", "https://p.test/cb/", "s").startswith(settings.META_DIALOG_URL + "/v25.0/")
