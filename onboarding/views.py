"""Public onboarding pages and Meta's callbacks. Thin: the work is in flow, invitations, meta_callbacks."""

from __future__ import annotations

import hmac
import logging
import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from common.logs import bind_client
from common.meta import graph_client
from common.ratelimit import rate_limit
from common.responses import json_error
from graph.permissions import ASSET_TYPES, describe
from graph.signatures import SignedRequestError, parse_signed_request, verify_webhook_signature

from . import flow, meta_callbacks
from .failures import STATE_FAILURE, failure_for
from .invitations import InvitationError, check_usable, mark_opened, resolve_invitation
from .models import DataDeletionRequest, Invitation, LoginAttempt, LoginConfiguration

logger = logging.getLogger(__name__)

_INVITATION_ERROR_STATUS = {
    InvitationError.MALFORMED: 404,
    InvitationError.EXPIRED: 410,
    InvitationError.REVOKED: 410,
    InvitationError.USED: 410,
}


def _invitation_error(request: HttpRequest, error: InvitationError) -> HttpResponse:
    return render(
        request,
        "onboarding/invitation_error.html",
        {"kind": error.kind, "invitation": error.invitation},
        status=_INVITATION_ERROR_STATUS[error.kind],
    )


def _link_expired(request: HttpRequest, attempt: LoginAttempt | None = None, status: int = 400) -> HttpResponse:
    # "Start again" only for a browser that opened the invitation itself.
    invitation_id = None
    if attempt is not None and flow.invitation_allowed(request.session, attempt.invitation_id):
        invitation_id = attempt.invitation_id
    context = {"failure": STATE_FAILURE, "invitation_id": invitation_id}
    return render(request, "onboarding/link_expired.html", context, status=status)


@never_cache
@require_GET
@rate_limit("invitation")
def invitation(request: HttpRequest, key: str) -> HttpResponse:
    try:
        invitation = resolve_invitation(key)
    except InvitationError as error:
        return _invitation_error(request, error)
    bind_client(invitation.client_id)
    mark_opened(invitation)
    renewed = flow.renewed_at(invitation)
    if renewed is not None:
        return render(request, "onboarding/already_renewed.html", {"invitation": invitation, "renewed_at": renewed})
    flow.allow_invitation(request.session, invitation)
    configuration = invitation.configuration
    system_user = configuration.token_type == LoginConfiguration.TokenType.SYSTEM_USER
    return render(
        request,
        "onboarding/invitation.html",
        {
            "invitation": invitation,
            "client": invitation.client,
            "configuration": configuration,
            "permissions": [(name, _(describe(name))) for name in configuration.permissions],
            "asset_types": [_(ASSET_TYPES.get(kind, kind)) for kind in configuration.asset_types],
            "system_user": system_user,
            "mobile_warning": system_user and flow.is_mobile(request.headers.get("User-Agent", "")),
            "reconnect": invitation.mode == Invitation.Mode.RECONNECT,
            "switching_from": invitation.switching_from,
            "reselect": flow.assets_to_reselect(invitation) if invitation.mode == Invitation.Mode.RECONNECT else [],
        },
    )


@never_cache
@require_POST
@rate_limit("connect-start")
def start(request: HttpRequest) -> HttpResponse:
    invitation_id = request.POST.get("invitation", "")
    if not flow.invitation_allowed(request.session, invitation_id):
        return _link_expired(request)
    invitation = Invitation.objects.select_related("client", "configuration").filter(pk=int(invitation_id)).first()
    if invitation is None:
        return _link_expired(request)
    bind_client(invitation.client_id)
    try:
        check_usable(invitation, allow_used=True)
    except InvitationError as error:
        return _invitation_error(request, error)
    binding = flow.session_binding(request.session)
    attempt, state = flow.start_login(invitation, binding=binding, user_agent=request.headers.get("User-Agent", ""))
    with graph_client() as graph:
        return HttpResponseRedirect(flow.dialog_url(attempt, state, graph))


@never_cache
@require_GET
@rate_limit("connect-callback")
@sensitive_variables("request")
def callback(request: HttpRequest) -> HttpResponse:
    # Meta sends the authorization code in the query string (D12): error reports must not show it.
    try:
        attempt = flow.claim_attempt(request.GET.get("state"), flow.current_binding(request.session))
    except flow.StateError as error:
        replay = error.attempt
        # A reload or replay of a finished (or in-flight) callback in the same browser shows its result.
        if error.kind == "reused" and replay.outcome in (LoginAttempt.Outcome.SUCCEEDED, LoginAttempt.Outcome.PENDING):
            return redirect("onboarding:result", attempt_id=replay.pk)
        logger.info("Callback refused: %s state", error.kind)
        return _link_expired(request, replay)
    bind_client(attempt.client_id)
    try:
        with graph_client() as graph:
            attempt = flow.complete_callback(attempt, request.GET, graph)
    except Exception:
        # Storing is one transaction, so nothing half-done remains; the person gets a page, not a 500.
        logger.exception("Callback for login attempt %s failed unexpectedly", attempt.pk)
        attempt = flow.fail(attempt, "internal_error")
    return redirect("onboarding:result", attempt_id=attempt.pk)


@never_cache
@require_GET
def result(request: HttpRequest, attempt_id: int) -> HttpResponse:
    attempt = (
        LoginAttempt.objects.select_related("client", "configuration", "invitation", "token")
        .filter(pk=attempt_id)
        .first()
    )
    binding = flow.current_binding(request.session)
    if attempt is None or not binding or not hmac.compare_digest(attempt.session_key_hash, binding):
        return render(request, "onboarding/not_found.html", status=404)
    context = {"attempt": attempt, "client": attempt.client, "configuration": attempt.configuration}
    if attempt.outcome == LoginAttempt.Outcome.SUCCEEDED and attempt.token is not None:
        context["grants"] = flow.connected_grants(attempt.token)
        context["comparison"] = flow.compare_with_previous(attempt.token)
        context["partial"] = flow.partial_connection(attempt.token, attempt.configuration, context["comparison"])
    elif attempt.outcome in (LoginAttempt.Outcome.FAILED, LoginAttempt.Outcome.CANCELLED):
        context["failure"] = failure_for(attempt.failure_kind)
    elif attempt.outcome == LoginAttempt.Outcome.EXPIRED:
        context["failure"] = STATE_FAILURE
    context["can_retry"] = attempt.invitation_id is not None and flow.invitation_allowed(
        request.session, attempt.invitation_id
    )
    response = render(request, "onboarding/result.html", context)
    if attempt.outcome == LoginAttempt.Outcome.PENDING:
        response["Refresh"] = "3"  # reloads without JavaScript while the callback finishes elsewhere
    return response


# --- Meta's callbacks (CSRF exempt: Meta posts them, signed) ----------------------------------

# Meta's app-scoped user ids are decimal strings; anything else in a signed payload is refused
# before it reaches a query (a NUL, for one, makes PostgreSQL fail the whole request).
_USER_ID_RE = re.compile(r"^[0-9]{1,32}$")
# Confirmation codes are secrets.token_hex(8); a deletion status link with anything else is unknown.
_CONFIRMATION_CODE_RE = re.compile(r"^[0-9a-f]{16}$")


def _signed_request(request: HttpRequest) -> dict | JsonResponse:
    try:
        return parse_signed_request(request.POST.get("signed_request"), settings.META_APP_SECRET)
    except SignedRequestError as error:
        logger.warning("Refused a signed_request from %s: %s", request.path, error.reason)
        return json_error(400, error.reason, str(error), reason=error.reason)


def _user_id(payload: dict) -> str | JsonResponse:
    user_id = payload.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not _USER_ID_RE.match(user_id.strip()):
        return json_error(
            400, "malformed", _("The payload names no user_id Meta would send (a number)."), reason="malformed"
        )
    return user_id.strip()


def _signed_user_id(request: HttpRequest) -> str | JsonResponse:
    """The user_id of a verified signed_request, or the 400 that explains why there is none."""
    payload = _signed_request(request)
    if isinstance(payload, JsonResponse):
        return payload
    return _user_id(payload)


@csrf_exempt
@require_POST
@rate_limit("meta-callbacks")
@sensitive_post_parameters("signed_request")
def deauthorize(request: HttpRequest) -> JsonResponse:
    user_id = _signed_user_id(request)
    if isinstance(user_id, JsonResponse):
        return user_id
    revoked = meta_callbacks.deauthorize(user_id)
    return JsonResponse({"success": True, "tokens_revoked": revoked})


@csrf_exempt
@require_POST
@rate_limit("meta-callbacks")
@sensitive_post_parameters("signed_request")
def data_deletion(request: HttpRequest) -> JsonResponse:
    user_id = _signed_user_id(request)
    if isinstance(user_id, JsonResponse):
        return user_id
    deletion = meta_callbacks.delete_user_data(user_id)
    url = f"{settings.PORTAL_BASE_URL}/meta/data-deletion/{deletion.confirmation_code}/"
    return JsonResponse({"url": url, "confirmation_code": deletion.confirmation_code})


@require_GET
@rate_limit("deletion-status")
def data_deletion_status(request: HttpRequest, code: str) -> HttpResponse:
    deletion = None
    if _CONFIRMATION_CODE_RE.match(code):
        deletion = DataDeletionRequest.objects.filter(confirmation_code=code).first()
    return render(
        request,
        "onboarding/deletion_status.html",
        {"deletion": deletion, "code": code[:64]},
        status=200 if deletion else 404,
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
@rate_limit("meta-callbacks")
@sensitive_variables("raw_body")
def webhooks(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        mode = request.GET.get("hub.mode", "")
        token = request.GET.get("hub.verify_token", "")
        challenge = request.GET.get("hub.challenge", "")
        expected = settings.META_WEBHOOK_VERIFY_TOKEN
        if mode == "subscribe" and expected and hmac.compare_digest(token.encode(), expected.encode()):
            return HttpResponse(challenge, content_type="text/plain")
        return HttpResponse("Verification failed.", status=403, content_type="text/plain")
    raw_body = request.body
    if not verify_webhook_signature(raw_body, request.headers.get("X-Hub-Signature-256"), settings.META_APP_SECRET):
        logger.warning("Refused a webhook with a bad signature")
        return json_error(403, "bad_signature", _("The X-Hub-Signature-256 header does not match the body."))
    try:
        is_new, summary = meta_callbacks.receive_webhook(raw_body)
    except meta_callbacks.WebhookPayloadError as error:
        return json_error(400, "malformed_payload", str(error))
    return JsonResponse({"received": True, "duplicate": not is_new, **summary})
