"""The docs page: Swagger UI from the portal's own static files, under the site's Content-Security-Policy."""

from __future__ import annotations

import re

import pytest
import requests

from api.main import api
from testsupport.browser import chromium_page, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_docs_page_loads_nothing_from_another_host(live_server):
    page = requests.get(f"{live_server.url}/api/v1/docs", timeout=30)

    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    external = [url for url in re.findall(r'(?:src|href)="([^"]+)"', page.text) if not url.startswith("/")]
    assert external == []
    assert "<script>" not in page.text  # the settings are a JSON data block, read by a script file


@pytest.mark.browser
def test_the_docs_page_renders_every_endpoint_in_a_browser_without_a_csp_refusal(live_server, chromium_path):
    with chromium_page(chromium_path, width=1280) as page:
        requests_seen = []
        page.on("request", lambda request: requests_seen.append(request.url))
        page.goto(f"{live_server.url}/api/v1/docs")
        page.wait_for_selector("text=Portal API")
        for path in api.get_openapi_schema()["paths"]:
            page.wait_for_selector(f'.opblock-summary-path[data-path="{path}"]')
        screenshot(page, "api-docs")
    assert requests_seen and all(url.startswith(live_server.url) for url in requests_seen), requests_seen
