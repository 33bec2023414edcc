"""Malformed requests get a clear 400, every page has a Content-Security-Policy, error reports hide secrets."""

import sys

import pytest
from django.test import RequestFactory, override_settings
from django.views.debug import ExceptionReporter

from common.security import PortalExceptionReporter, PortalExceptionReporterFilter

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    ["/meta/data-deletion/%00/", "/invite/abc%00def/", "/connect/callback/?code=%00&state=x", "/?q=a%00b"],
)
def test_a_nul_in_the_path_or_query_gets_the_branded_400_page(client, path):
    response = client.get(path)
    assert response.status_code == 400
    assert "We couldn't understand that request" in response.content.decode()


def test_a_nul_sent_to_meta_s_callbacks_gets_json_with_a_code(client):
    response = client.post("/meta/deauthorize/?x=%00", {"signed_request": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_every_page_has_a_content_security_policy_allowing_forms_to_meta_s_dialog(client, settings):
    settings.META_DIALOG_URL = "https://www.facebook.com"
    policy = client.get("/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert directives["form-action"] == "'self' https://www.facebook.com"


def test_the_admin_and_error_pages_carry_the_policy_too(client):
    assert "default-src 'self'" in client.get("/admin/login/")["Content-Security-Policy"]
    assert "default-src 'self'" in client.get("/no-such-page/")["Content-Security-Policy"]


def test_json_answers_carry_no_policy_it_would_govern_nothing(client):
    answer = client.get("/api/v1/nowhere")

    assert answer["Content-Type"].startswith("application/json")
    assert "Content-Security-Policy" not in answer and answer["X-Content-Type-Options"] == "nosniff"


def test_error_reports_hide_the_callback_s_code_and_the_signed_request():
    request = RequestFactory().get("/connect/callback/?code=SECRET-CODE&state=SECRET-STATE&other=shown")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        report = PortalExceptionReporter(request, *sys.exc_info()).get_traceback_text()
    assert "SECRET-CODE" not in report and "SECRET-STATE" not in report
    assert "shown" in report

    post = RequestFactory().post("/meta/data-deletion/", {"signed_request": "SIGNED-SECRET", "x": "1"})
    assert PortalExceptionReporterFilter().get_post_parameters(post)["signed_request"] != "SIGNED-SECRET"


def test_djangos_own_reporter_would_have_shown_the_code():
    """The test above can fail: without our reporter the code is in the report."""
    request = RequestFactory().get("/connect/callback/?code=SECRET-CODE")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        report = ExceptionReporter(request, *sys.exc_info()).get_traceback_text()
    assert "SECRET-CODE" in report


def test_service_urls_and_keys_are_hidden_in_error_reports():
    safe = PortalExceptionReporterFilter().get_safe_settings()
    for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "META_APP_SECRET", "REDIS_URL", "SENTRY_DSN"):
        assert safe[name] == PortalExceptionReporterFilter.cleansed_substitute, name


@override_settings(DEBUG=False)
def test_unknown_pages_get_the_branded_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "There is no page at this address" in page and "Skip to content" in page


def test_a_failing_view_gets_the_branded_500_with_the_portal_s_name(client, settings):
    from django.urls import path

    def broken(request):
        raise RuntimeError("boom")

    urls = type("urls", (), {"urlpatterns": [path("broken/", broken)], "handler500": "config.views.server_error"})
    settings.ROOT_URLCONF = urls
    settings.DEBUG = False
    client.raise_request_exception = False
    response = client.get("/broken/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page and settings.PORTAL_NAME in page
