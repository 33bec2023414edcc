"""Refusals in the form the caller reads: JSON with a code and a sentence for machines, a page for people."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

# Meta's servers post to these; the provider's services call the API. Everything else is a page.
JSON_PATHS = ("/meta/deauthorize/", "/meta/data-deletion/", "/meta/webhooks/")
JSON_PATH_PREFIXES = ("/api/",)


def wants_json(request: HttpRequest) -> bool:
    path = request.path
    if path in JSON_PATHS or path.startswith(JSON_PATH_PREFIXES):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def json_error(status: int, code: str, message: str, **extra) -> JsonResponse:
    """The one JSON error shape: ``{"error": {"code": ..., "message": ..., ...}}``."""
    return JsonResponse({"error": {"code": code, "message": str(message), **extra}}, status=status)


def error_response(
    request: HttpRequest, status: int, code: str, message: str, *, template: str | None = None, context=None
) -> HttpResponse:
    """A refusal: JSON for machine callers, otherwise the branded page for this status."""
    if wants_json(request):
        return json_error(status, code, message)
    body = render_to_string(
        template or f"{status}.html", {"message": message, "code": code, **(context or {})}, request=request
    )
    return HttpResponse(body, status=status)
