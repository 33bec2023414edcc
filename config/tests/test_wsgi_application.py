"""The WSGI application sends /api/ through the API's shorter middleware stack, the rest through the full one."""

from __future__ import annotations

import io
import json

import pytest
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from config.handlers import PortalWSGIApplication

pytestmark = pytest.mark.django_db


def call(application, path: str, **headers) -> tuple[str, dict, bytes]:
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "HTTP_HOST": "testserver", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""), "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }  # fmt: skip
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started.update(status=status, headers=dict(response_headers))

    response = application(environ, start_response)
    try:
        body = b"".join(response)
    finally:
        response.close()
    return started["status"], started["headers"], body


@pytest.fixture
def application():
    # As Django's test client does: the test's transaction must outlive each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield PortalWSGIApplication()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_api_stack_leaves_out_what_only_serves_sessions():
    assert "django.contrib.sessions.middleware.SessionMiddleware" in settings.MIDDLEWARE
    left_out = set(settings.MIDDLEWARE) - set(settings.API_MIDDLEWARE)
    assert left_out == {
        "whitenoise.middleware.WhiteNoiseMiddleware", "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.locale.LocaleMiddleware", "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware", "django_otp.middleware.OTPMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware", "axes.middleware.AxesMiddleware",
    }  # fmt: skip
    assert [name for name in settings.MIDDLEWARE if name in settings.API_MIDDLEWARE] == settings.API_MIDDLEWARE


def test_an_api_request_is_answered_in_json_with_the_security_headers_and_no_session(application):
    status, headers, body = call(application, "/api/v1/credential", Authorization="Bearer svc_wrong")

    assert status.startswith("401")
    assert json.loads(body)["error"]["code"] == "invalid_credential"
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin" and headers["X-Request-ID"]
    assert headers["Content-Length"] == str(len(body))
    assert "Set-Cookie" not in headers and "Cookie" not in headers.get("Vary", "")
    assert "Content-Language" not in headers  # the language middleware did not run


def test_the_api_docs_page_keeps_its_content_security_policy(application):
    status, headers, _ = call(application, "/api/v1/docs")

    assert status.startswith("200")
    assert "default-src" in headers["Content-Security-Policy"]


def test_pages_still_go_through_the_whole_stack(application):
    status, headers, body = call(application, "/admin/login/")

    assert status.startswith("200")
    assert "csrftoken=" in headers.get("Set-Cookie", "")  # CSRF and sessions ran
    assert headers["Content-Language"]  # and the language middleware
    assert headers["Content-Security-Policy"] and headers["X-Request-ID"]
