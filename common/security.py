"""HTTP hardening shared by every app: malformed requests refused, CSP, error reports without secrets."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.utils.translation import gettext as _
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from .responses import error_response

# Parameters that carry an authorization code, a token, a signed request or a secret.
SENSITIVE_PARAMETERS = {
    "code",
    "state",
    "access_token",
    "input_token",
    "fb_exchange_token",
    "client_secret",
    "appsecret_proof",
    "signed_request",
    "hub.verify_token",
    "token",
    "password",
}


class RejectMalformedRequestsMiddleware:
    """A NUL in the path or the query string is refused with a 400 before any view runs.

    No URL of ours has one, and PostgreSQL refuses NUL in text: a view that looked it up
    would answer 500 instead of saying what is wrong.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or "\x00" in unquote(request.META.get("QUERY_STRING", "")):
            return error_response(
                request, 400, "malformed_request", _("The address contains characters that no page of ours has.")
            )
        return self.get_response(request)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's policy on every document, with Meta's login dialog allowed as a form target.

    "Continue with Facebook" posts to /connect/start/, which redirects to the dialog; browsers
    hold a form's redirect to ``form-action`` too. The origin is read per request from
    META_DIALOG_URL, which the tests and the demo point at the simulator.
    """

    def process_response(self, request, response):
        # A policy governs documents; a JSON answer is never one (and nosniff keeps browsers from
        # taking it for HTML). Building the policy was about 5% of an API request's CPU (D90).
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        return super().process_response(request, response)

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        dialog = urlsplit(settings.META_DIALOG_URL)
        if not report_only and dialog.scheme and dialog.netloc:
            parts.update = {**(parts.update or {}), "form-action": [f"{dialog.scheme}://{dialog.netloc}"]}
        return parts


class PortalExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, also hiding service URLs (they hold passwords) and sensitive parameters."""

    hidden_settings = re.compile("API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DSN|_URL$", flags=re.I)

    def get_post_parameters(self, request):
        parameters = super().get_post_parameters(request)
        if request is None or not any(name in parameters for name in SENSITIVE_PARAMETERS):
            return parameters
        cleansed = parameters.copy()
        for name in SENSITIVE_PARAMETERS & set(cleansed):
            cleansed[name] = self.cleansed_substitute
        return cleansed

    def get_safe_request_meta(self, request):
        meta = super().get_safe_request_meta(request)
        if meta.get("QUERY_STRING"):
            meta["QUERY_STRING"] = self.cleansed_substitute
        return meta


class PortalExceptionReporter(ExceptionReporter):
    """Error reports list GET parameters with the sensitive ones' values hidden, and a URL without its query."""

    def get_traceback_data(self):
        data = super().get_traceback_data()
        if self.request is not None:
            uri = data.get("request_insecure_uri") or ""
            if "?" in uri:
                data["request_insecure_uri"] = uri.split("?", 1)[0] + "?" + self.filter.cleansed_substitute
            substitute = self.filter.cleansed_substitute
            data["request_GET_items"] = [
                (name, substitute if name.lower() in SENSITIVE_PARAMETERS else value)
                for name, value in self.request.GET.items()
            ]
        return data
