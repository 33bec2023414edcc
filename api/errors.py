"""Every answer of the API that is not a success: ``{"error": {"code", "message"}}`` (common.responses.json_error).

Endpoints raise ``ApiError``; the handlers installed by ``install_handlers`` turn it, and every
error django-ninja raises itself (validation, parsing, a 404), into that one shape, and an
unexpected exception into a logged 500 of the same shape (the schema tests require none).
"""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import errors as ninja_errors

from common.responses import json_error

logger = logging.getLogger(__name__)

# The codes a status answers with when django-ninja raised the error.
STATUS_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "too_large", 422: "invalid_request", 429: "rate_limited"}


class ApiError(Exception):
    """A refusal or a "no" in words: status, a machine-readable code, a sentence, and extra fields."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict | None = None, **extra):
        super().__init__(code)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers or {}, extra

    def response(self) -> HttpResponse:
        response = json_error(self.status, self.code, self.message, **self.extra)
        for name, value in self.headers.items():
            response[name] = value
        return response


class Refused(Exception):
    """A response made elsewhere (the rate limiter's 429), to be answered as it is."""

    def __init__(self, response: HttpResponse, code: str):
        super().__init__(code)
        self.response, self.code = response, code


def answered(request: HttpRequest, response: HttpResponse, code: str) -> HttpResponse:
    request.api_outcome = code  # read by api.audit when it records the use
    return response


def _validation_message(errors: list[dict]) -> tuple[str, list[dict]]:
    fields = []
    for error in errors[:20]:
        location = [str(part) for part in error.get("loc", ())]
        where, name = (location[0], ".".join(location[1:])) if location else ("request", "")
        fields.append({"location": where, "name": name, "message": str(error.get("msg", "is not valid"))})
    if not fields:
        return "The request is not valid.", fields
    first = fields[0]
    subject = f"{first['location']} parameter “{first['name']}”" if first["name"] else f"the {first['location']}"
    more = f" ({len(errors) - 1} more problem(s) in “fields”)" if len(errors) > 1 else ""
    return f"The {subject} is not valid: {first['message']}.{more}", fields


def install_handlers(api) -> None:
    @api.exception_handler(ApiError)
    def api_error(request, exc: ApiError):
        return answered(request, exc.response(), exc.code)

    @api.exception_handler(Refused)
    def refused(request, exc: Refused):
        return answered(request, exc.response, exc.code)

    @api.exception_handler(ninja_errors.ValidationError)
    def invalid(request, exc: ninja_errors.ValidationError):
        message, fields = _validation_message(exc.errors)
        return answered(request, json_error(422, "invalid_request", message, fields=fields), "invalid_request")

    @api.exception_handler(ninja_errors.HttpError)
    def http_error(request, exc: ninja_errors.HttpError):
        code = STATUS_CODES.get(exc.status_code, "error")
        message = {400: "The request body could not be read: send JSON.", 401: "Send a service credential."}.get(
            exc.status_code, str(exc.message))
        return answered(request, json_error(exc.status_code, code, message), code)

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return answered(request, json_error(404, "not_found", "Nothing here: see /api/v1/docs."), "not_found")

    @api.exception_handler(RequestDataTooBig)
    def too_large(request, exc):
        return answered(request, json_error(413, "too_large", "The request body is too large."), "too_large")

    @api.exception_handler(Exception)
    def unexpected(request, exc: Exception):
        logger.exception("API error %s on %s", exc.__class__.__name__, request.path)
        response = json_error(500, "internal_error", "Something went wrong on our side; it has been logged.")
        return answered(request, response, "internal_error")
