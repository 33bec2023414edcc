"""The WSGI application: requests under /api/ go through the API's shorter middleware stack (D90).

The provider's services call the API with a bearer credential, never a session cookie: sessions,
CSRF, users, two-factor state, messages, the language and login lockouts have nothing to do
there, and running them cost about a millisecond of CPU per request. ``API_MIDDLEWARE`` (settings)
is ``MIDDLEWARE`` without those; everything else (HTTPS and security headers, the request id and
access record, malformed-request refusal, Content-Length, framing and CSP for the docs page) is
the same. The ASGI application keeps the full stack.
"""

from __future__ import annotations

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

API_PREFIX = "/api/"


class ApiWSGIHandler(WSGIHandler):
    def load_middleware(self, is_async=False):
        # Django's loader reads settings.MIDDLEWARE; it runs once, at start-up, before any request.
        portal_middleware = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = portal_middleware


class PortalWSGIApplication:
    def __init__(self):
        self.portal = WSGIHandler()
        self.api = ApiWSGIHandler()

    def __call__(self, environ, start_response):
        handler = self.api if environ.get("PATH_INFO", "").startswith(API_PREFIX) else self.portal
        return handler(environ, start_response)
