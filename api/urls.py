"""/api/v1/: django-ninja's views, each behind the per-address rate limit and the audit, and a JSON 404
for every other path under /api/ (D40)."""

from __future__ import annotations

import functools

from django.http import Http404, HttpResponseNotAllowed
from django.urls import URLPattern, include, path, re_path
from django.views.decorators.common import no_append_slash
from django.views.decorators.csrf import csrf_exempt

from common.ratelimit import rate_limit
from common.responses import json_error

from . import audit
from .auth import count_request
from .main import api


def guarded(view, action: str):
    """A view of the API: limited per address before anything else, JSON for Django's own refusals,
    and every use by a known credential recorded."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        refused = count_request(request)
        if refused is not None:
            return refused
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            response = not_found(request)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            response = json_error(405, "method_not_allowed", f"This path answers {allowed} only.")
            response["Allow"] = allowed
            request.api_outcome = "method_not_allowed"
        audit.record(request, response, action)
        return response

    wrapped.csrf_exempt = True  # credentials, not cookies: there is no session to forge a request with
    return wrapped


@no_append_slash
def not_found(request, *args, **kwargs):
    return json_error(404, "not_found", "No such API path: the endpoints are listed at /api/v1/docs.")


def _guarded_patterns(patterns):
    result = []
    for pattern in patterns:
        assert isinstance(pattern, URLPattern), "django-ninja's URLs are plain patterns"
        view = guarded(pattern.callback, pattern.name or "api")
        result.append(URLPattern(pattern.pattern, view, pattern.default_args, pattern.name))
    return result


_patterns, _app_name, _namespace = api.urls
urlpatterns = [
    path("v1/", include((_guarded_patterns(_patterns), _app_name), namespace=_namespace)),
    re_path(r"^", csrf_exempt(rate_limit("api-ip")(not_found))),  # a POST to no path is a JSON 404 too
]
