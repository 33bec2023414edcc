"""Who is calling and what it may do: the credential check every endpoint uses (docs/decisions.md D41, D42).

An endpoint names the scope it needs::

    @router.get("/assets/{meta_id}/token", auth=require_scope(Scope.TOKENS_READ), ...)
    def asset_token(request, meta_id: str):
        credential = request.auth                  # the ServiceCredential
        require_client(credential, client_id)      # 404 when it is limited to other clients

Order of the checks (each refusal is JSON and changes nothing but the audit row): the rate
limit per address (``api.urls``, before anything; the per-secret count is made in the same round
trip), the secret (401: missing, wrong, revoked), the rate limit per credential (429), the scope
(403). Limits to clients and configurations are checked by the endpoint once it knows what the
request is about, with the helpers below.
"""

from __future__ import annotations

import functools

from django.conf import settings
from ninja.security import HttpBearer

from common import meta_throttle
from common.logs import client_ip
from common.ratelimit import count_and_read, refusal, rule_rate

from . import credentials
from .errors import ApiError, Refused
from .models import Scope, ServiceCredential

UNAUTHENTICATED = {"WWW-Authenticate": 'Bearer realm="api"'}
MARKERS = (credentials.CHANGED, meta_throttle.CHANGED)  # read with the rate limits (common.generations)


class ServiceCredentialAuth(HttpBearer):
    """``Authorization: Bearer <secret>`` of a service credential that has ``scope`` (None: any credential)."""

    openapi_description = "A service credential's secret, from the staff console (shown once when created)."

    def __init__(self, scope: str | None):
        if scope is not None and scope not in Scope.values:
            raise ValueError(f"Unknown scope {scope!r}; the scopes are {', '.join(Scope.values)}.")
        self.scope = scope
        super().__init__()

    def __call__(self, request) -> ServiceCredential:
        secret = bearer_secret(request)
        if not secret:
            raise ApiError(401, "unauthenticated",
                           "Send the service credential's secret in the header “Authorization: Bearer <secret>”.",
                           headers=UNAUTHENTICATED)
        generation = getattr(request, "api_markers", {}).get(credentials.CHANGED)  # read by count_request
        credential = credentials.find_credential(secret, generation=generation)
        if credential is None:
            raise ApiError(401, "invalid_credential", "This secret belongs to no service credential.",
                           headers=UNAUTHENTICATED)
        if credential.is_revoked():
            raise ApiError(401, "credential_revoked",
                           f"The credential “{credential.name}” was revoked; ask staff for a new one.",
                           headers=UNAUTHENTICATED)
        request.api_credential = credential  # from here on the request is audited (api.audit)
        request.api_scope = self.scope
        if not hasattr(request, "api_secret_wait"):  # not counted on the way in (api.urls counts every request)
            count_request(request, address=False)
        if request.api_secret_wait is not None:
            raise Refused(refusal(request, "api", request.api_secret_wait), "rate_limited")
        if self.scope is not None and not credential.has_scope(self.scope):
            raise ApiError(403, "insufficient_scope",
                           f"The credential “{credential.name}” lacks the scope {self.scope}; staff can add it.",
                           scope=self.scope)
        return credential

    def authenticate(self, request, token):  # pragma: no cover - __call__ does it all
        raise NotImplementedError


def bearer_secret(request) -> str:
    """The secret of ``Authorization: Bearer <secret>``, or "" when the header says something else."""
    scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def count_request(request, *, address: bool = True):
    """Count the request under the API's limits in one round trip, before anything else reads it: per
    address (``api-ip``; its 429 is returned here) and per secret shown (``api``; kept as
    ``request.api_secret_wait`` for the credential check, which refuses it once the secret is known
    to be a credential's, so a wrong secret still gets its 401). None when the request may go on."""
    request.api_secret_wait = None
    request.api_markers = {}
    if not settings.RATE_LIMITS_ENABLED:
        return None
    secret = bearer_secret(request)
    hits = [("api-ip", f"ip:{client_ip(request)}", rule_rate("api-ip"))] if address else []
    if secret:
        hits.append(("api", f"secret:{credentials.hash_secret(secret)}", rule_rate("api")))
    # The change markers come in the same round trip: with them the credential check needs no query
    # while nothing about credentials changed (D91), nor the proxy's throttle check while nothing was
    # blocked (D93).
    waits, markers = count_and_read(hits, MARKERS if secret else ())
    request.api_markers = markers
    if secret:
        request.api_secret_wait = waits[-1]
    if address and waits[0] is not None:
        return refusal(request, "api-ip", waits[0])
    return None


@functools.cache
def require_scope(scope: str) -> ServiceCredentialAuth:
    """The ``auth=`` of an endpoint that needs ``scope``; the endpoint reads the credential as ``request.auth``."""
    return ServiceCredentialAuth(str(scope))


@functools.cache
def require_credential() -> ServiceCredentialAuth:
    """The ``auth=`` of an endpoint any valid credential may call (whatever its scopes)."""
    return ServiceCredentialAuth(None)


def _limit_ids(credential: ServiceCredential, relation: str, column: str) -> frozenset[int] | None:
    """The ids a credential is limited to through ``relation``, or None for no limit; kept on the object.

    ``api.credentials.find_credential`` says with the row whether there is a limit at all
    (``has_<relation>_limits``), so an unlimited credential costs no query here.
    """
    cached = f"_allowed_{relation}"
    if not hasattr(credential, cached):
        ids = frozenset()
        if getattr(credential, f"has_{relation}_limits", True):
            through = getattr(ServiceCredential, f"{relation}s").through
            ids = frozenset(through.objects.filter(servicecredential_id=credential.pk).values_list(column, flat=True))
        setattr(credential, cached, ids or None)
    return getattr(credential, cached)


def allowed_client_ids(credential: ServiceCredential) -> frozenset[int] | None:
    """The clients it is limited to, or None for every client."""
    return _limit_ids(credential, "client", "clientbusiness_id")


def allowed_configuration_ids(credential: ServiceCredential) -> frozenset[int] | None:
    """The login configurations whose tokens it may use, or None for all of them."""
    return _limit_ids(credential, "configuration", "loginconfiguration_id")


def may_see_client(credential: ServiceCredential, client_id: int | None) -> bool:
    allowed = allowed_client_ids(credential)
    return allowed is None or client_id in allowed


def not_found(what: str = "asset") -> ApiError:
    """The refusal for something that does not exist *or* belongs to a client the credential may not see:
    the same answer, so a limited credential learns nothing about other clients."""
    return ApiError(404, f"{what}_not_found", f"No {what} with this id is known to this credential.")


def require_client(credential: ServiceCredential, client_id: int | None, *, what: str = "client") -> None:
    if not may_see_client(credential, client_id):
        raise not_found(what)
