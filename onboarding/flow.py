"""The login flow: start an attempt, check ``state`` on the way back, finish or record the failure.

Views call these functions; nothing here knows about HTTP beyond the callback's
query parameters. A failed step only ever writes to its own LoginAttempt.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from graph.errors import GraphError
from graph.permissions import ASSET_TYPES, USER_ONLY
from tokens.install import granted_assets, install_token
from tokens.models import AccessToken, AssetGrant
from tokens.page_tokens import derive_quietly

from .invitations import check_usable
from .keys import hash_key, new_key
from .models import ClientBusiness, Invitation, LoginAttempt, LoginConfiguration

logger = logging.getLogger(__name__)

# Long enough for Meta's dialog with two-factor login and asset selection, short
# enough that a leaked state is useless soon after.
STATE_TTL = timedelta(minutes=15)
SESSION_BINDING_KEY = "onboarding_binding"
SESSION_INVITATIONS_KEY = "onboarding_invitations"
CALLBACK_PATH = "/connect/callback/"
MAX_STATE_LENGTH = 200

_MOBILE_RE = re.compile(r"Mobi|Android|iPhone|iPad|iPod|Windows Phone|BlackBerry|Opera Mini|IEMobile", re.I)


class StateError(Exception):
    """The callback's ``state`` can't be trusted. ``kind``: forged, reused, expired, cross_session."""

    def __init__(self, kind: str, attempt: LoginAttempt | None = None):
        super().__init__(kind)
        self.kind = kind
        self.attempt = attempt


def is_mobile(user_agent: str) -> bool:
    return bool(_MOBILE_RE.search(user_agent or ""))


def redirect_uri() -> str:
    """Exactly the redirect_uri registered with Meta; the code exchange must repeat it."""
    return settings.PORTAL_BASE_URL + CALLBACK_PATH


def state_ttl() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "ONBOARDING_STATE_TTL_SECONDS", STATE_TTL.total_seconds())))


# --- the browser session ------------------------------------------------------------------


def session_binding(session) -> str:
    """A hash of a random secret kept in this browser's session; attempts are bound to it.

    A secret of our own rather than the session key, which Django rotates on login.
    """
    secret = session.get(SESSION_BINDING_KEY)
    if not secret:
        secret = secrets.token_urlsafe(32)
        session[SESSION_BINDING_KEY] = secret
    return hash_key(secret)


def current_binding(session) -> str | None:
    secret = session.get(SESSION_BINDING_KEY)
    return hash_key(secret) if secret else None


def allow_invitation(session, invitation: Invitation) -> None:
    """Remember that this browser opened the invitation link, so it may start (and retry) the dialog."""
    allowed = list(session.get(SESSION_INVITATIONS_KEY, []))
    if invitation.pk not in allowed:
        session[SESSION_INVITATIONS_KEY] = [*allowed[-9:], invitation.pk]


def invitation_allowed(session, invitation_id) -> bool:
    try:
        return int(invitation_id) in session.get(SESSION_INVITATIONS_KEY, [])
    except (TypeError, ValueError):
        return False


# --- start --------------------------------------------------------------------------------


@transaction.atomic
def start_login(invitation: Invitation, *, binding: str, user_agent: str = "") -> tuple[LoginAttempt, str]:
    """A new attempt with a fresh state (returned in clear once, stored hashed)."""
    check_usable(invitation, allow_used=True)
    state = new_key()
    attempt = LoginAttempt.objects.create(
        state_hash=hash_key(state),
        session_key_hash=binding,
        client=invitation.client,
        configuration=invitation.configuration,
        invitation=invitation,
        mode=invitation.mode,
        expires_at=timezone.now() + state_ttl(),
        user_agent=(user_agent or "").replace("\x00", "")[:1000],  # PostgreSQL stores no NUL
        is_mobile=is_mobile(user_agent),
    )
    client = ClientBusiness.objects.select_for_update().get(pk=invitation.client_id)
    if client.status in (ClientBusiness.Status.INVITED, ClientBusiness.Status.DISCONNECTED):
        client.status = ClientBusiness.Status.ONBOARDING
        client.save(update_fields=["status", "status_changed_at", "updated_at"])
    return attempt, state


def dialog_url(attempt: LoginAttempt, state: str, graph) -> str:
    configuration = attempt.configuration
    return graph.dialog_url(
        configuration.config_id,
        redirect_uri(),
        state,
        response_type_code=configuration.needs_code_response,
        extras=configuration.dialog_extras(),
    )


# --- the callback -------------------------------------------------------------------------


def claim_attempt(state: str | None, binding: str | None) -> LoginAttempt:
    """The attempt this state belongs to, marked used; StateError if it can't be trusted."""
    if not state or len(state) > MAX_STATE_LENGTH:
        raise StateError("forged")
    attempt = (
        LoginAttempt.objects.select_related("configuration", "client", "invitation")
        .filter(state_hash=hash_key(state))
        .first()
    )
    if attempt is None:
        raise StateError("forged")
    if not binding or not hmac.compare_digest(attempt.session_key_hash, binding):
        raise StateError("cross_session", attempt)
    if attempt.used_at is not None:
        raise StateError("reused", attempt)
    now = timezone.now()
    if attempt.is_expired(now):
        LoginAttempt.objects.filter(pk=attempt.pk, outcome=LoginAttempt.Outcome.PENDING).update(
            outcome=LoginAttempt.Outcome.EXPIRED, failure_kind="state_expired", used_at=now, completed_at=now
        )
        raise StateError("expired", attempt)
    # Conditional update: of two simultaneous callbacks with one state, exactly one proceeds.
    if not LoginAttempt.objects.filter(pk=attempt.pk, used_at__isnull=True).update(used_at=now):
        attempt.refresh_from_db()
        raise StateError("reused", attempt)
    attempt.used_at = now
    return attempt


def classify_meta_error(params) -> str:
    """Which of Meta's dialog errors came back (docs/meta.md; some shapes unconfirmed)."""
    error = (params.get("error") or "").lower()
    reason = (params.get("error_reason") or "").lower()
    words = " ".join(
        (error, reason, (params.get("error_description") or "").lower(), (params.get("error_message") or "").lower())
    )
    if reason == "user_denied":
        return "user_cancelled"
    if "mobile" in words:
        return "mobile_not_supported"
    if "response_type" in words or "response type" in words:
        return "wrong_response_type"
    if "config" in words:
        return "invalid_config"
    if error == "access_denied":
        return "access_denied"
    return "meta_error"


def fail(attempt: LoginAttempt, kind: str, *, error: GraphError | None = None, params=None) -> LoginAttempt:
    """Record why this attempt failed; touches nothing but the attempt."""
    params = params or {}
    attempt.outcome = LoginAttempt.Outcome.CANCELLED if kind == "user_cancelled" else LoginAttempt.Outcome.FAILED
    attempt.failure_kind = kind
    attempt.completed_at = timezone.now()
    if error is not None:
        attempt.error_code = "/".join(str(part) for part in (error.code, error.subcode) if part is not None)[:64]
        attempt.error_reason = (error.error_type or error.__class__.__name__)[:200]
        attempt.error_description = error.message[:2000]
    else:
        attempt.error_code = str(params.get("error_code") or params.get("error") or "")[:64]
        attempt.error_reason = str(params.get("error_reason") or "")[:200]
        attempt.error_description = str(params.get("error_description") or params.get("error_message") or "")[:2000]
    attempt.save(
        update_fields=[
            "outcome",
            "failure_kind",
            "completed_at",
            "error_code",
            "error_reason",
            "error_description",
        ]
    )
    logger.info("Login attempt %s failed: %s", attempt.pk, kind)
    return attempt


@dataclass
class _Checked:
    value: str
    info: object
    business_id: str | None
    granted: list


def _expected_type(configuration: LoginConfiguration) -> str:
    return "SYSTEM_USER" if configuration.token_type == LoginConfiguration.TokenType.SYSTEM_USER else "USER"


@dataclass
class BusinessChoice:
    business_id: str | None = None
    problem: str = ""  # a failure kind (onboarding.failures) when the grant can't be used


def granted_business_ids(info) -> set[str]:
    """The businesses the person granted ``business_management`` on (granular_scopes target ids)."""
    return {
        str(target)
        for entry in getattr(info, "granular_scopes", None) or []
        if entry.get("scope") == "business_management"
        for target in entry.get("target_ids") or []
    }


def provider_business_ids() -> set[str]:
    """The provider's own business (the app's), which Meta requires be no client's."""
    return {str(b) for b in getattr(settings, "META_APP_BUSINESS_IDS", []) if str(b)}


def choose_business(info, refs, me: dict | None, client: ClientBusiness) -> BusinessChoice:
    """Which business this grant connects (D70): never the first entry of ``/me/businesses``.

    A system user's token names its business (``client_business_id``). A person's grant is
    the business that owns the assets they selected (each Page and ad account names its owner),
    else the one they granted ``business_management`` on; when the owners are several, the one
    the invitation names (the client's known business) or the one granted wins. The client's
    known business must be among what the grant reaches.
    """
    if me and me.get("client_business_id"):
        candidates = {str(me["client_business_id"])}
    else:
        owners = {str(ref.business_id) for ref in refs if ref.kind != "business" and ref.business_id}
        granted = granted_business_ids(info)
        candidates = owners or granted
        if not candidates:
            people_in = {str(ref.meta_id) for ref in refs if ref.kind == "business"}
            candidates = people_in if len(people_in) == 1 else set()
        if len(candidates) > 1:
            for preferred in (
                {client.meta_business_id} if client.meta_business_id else set(),
                granted,
            ):
                if len(candidates & preferred) == 1:
                    candidates = candidates & preferred
                    break
    if candidates & provider_business_ids():
        return BusinessChoice(problem="provider_business")
    if len(candidates) > 1:
        if client.meta_business_id in candidates:
            return BusinessChoice(client.meta_business_id)
        return BusinessChoice(problem="ambiguous_business")
    business_id = next(iter(candidates), None)
    if business_id and client.meta_business_id and client.meta_business_id != business_id:
        return BusinessChoice(business_id, "different_business")
    if business_id and ClientBusiness.objects.filter(meta_business_id=business_id).exclude(pk=client.pk).exists():
        return BusinessChoice(business_id, "business_taken")
    return BusinessChoice(business_id)


def chosen_by_name(business_id: str | None, refs) -> str:
    """What the person chose, by name, for their page: the business as ``/me/businesses`` names it, else
    the assets they selected (a system user's token names no business); "" when Meta named nothing."""
    name = next((ref.name for ref in refs if ref.kind == "business" and str(ref.meta_id) == business_id
                 and ref.name), "")  # fmt: skip
    if name:
        return name
    return ", ".join(sorted({ref.name for ref in refs if ref.kind != "business" and ref.name})[:3])


def without_other_clients_assets(granted: list, client: ClientBusiness, business_id: str | None) -> list:
    """One client's token never gets a grant on another client's business (its assets are theirs)."""
    if not granted:
        return granted
    from tokens.models import Asset

    other_businesses = set(
        ClientBusiness.objects.exclude(pk=client.pk)
        .filter(meta_business_id__in={g.business_id for g in granted if g.business_id} - {business_id})
        .values_list("meta_business_id", flat=True)
    )
    theirs = set(
        Asset.objects.filter(meta_id__in=[g.meta_id for g in granted], client__isnull=False)
        .exclude(client=client)
        .values_list("meta_id", flat=True)
    )
    kept = [
        g for g in granted
        if g.meta_id not in theirs
        and g.business_id not in other_businesses
        # The person's other businesses are no part of this grant.
        and not (g.kind == "business" and business_id and g.meta_id != business_id)
    ]  # fmt: skip
    if len(kept) < len(granted):
        logger.info("Left out %s asset(s) that belong to another client", len(granted) - len(kept))
    return kept


def refuse(attempt: LoginAttempt, kind: str, graph, value: str, info=None, **details) -> LoginAttempt:
    """Fail an attempt whose token Meta already issued: take the stray grant back at Meta (D71).

    Not when one of our live tokens has the same grantor: at Meta the person's (or the system
    user's) grant is one, and removing it would end the connection we hold.
    """
    attempt = fail(attempt, kind, **details)
    grantor = str(getattr(info, "user_id", "") or "")
    if grantor and AccessToken.objects.filter(meta_user_id=grantor, status__in=AccessToken.LIVE_STATUSES).exists():
        logger.info("Login attempt %s: the grant is shared with a live connection, left at Meta", attempt.pk)
        return attempt
    try:
        graph.revoke_permissions(value)
    except GraphError as error:
        logger.warning("Login attempt %s: the stray grant could not be removed at Meta (%s)", attempt.pk, error.code)
        return attempt
    attempt.stray_revoked_at = timezone.now()
    attempt.save(update_fields=["stray_revoked_at"])
    return attempt


@sensitive_variables("params", "code", "value", "checked")
def complete_callback(attempt: LoginAttempt, params, graph) -> LoginAttempt:
    """Finish a claimed attempt from Meta's callback parameters. Returns the attempt, succeeded or failed."""
    if params.get("error") or params.get("error_reason") or params.get("error_code"):
        return fail(attempt, classify_meta_error(params), params=params)
    code = params.get("code")
    if not code or len(code) > 2000:
        return fail(attempt, "missing_code")
    configuration = attempt.configuration

    try:
        value = graph.exchange_code(code, redirect_uri()).access_token
        if configuration.token_type == LoginConfiguration.TokenType.USER:
            value = graph.exchange_long_lived(value).access_token
    except GraphError as error:
        return fail(attempt, "code_exchange_failed", error=error)

    try:
        info = graph.debug_token(value)
    except GraphError as error:
        return fail(attempt, "token_check_failed", error=error)
    if str(info.app_id or "") != str(settings.META_APP_ID):
        return fail(attempt, "wrong_app")
    if not info.is_valid:
        return fail(attempt, "token_invalid", error=info.error)
    if info.type != _expected_type(configuration):
        return refuse(attempt, "wrong_token_type", graph, value, info)
    missing = set(configuration.permissions) - set(info.scopes) - USER_ONLY
    if missing:
        return refuse(
            attempt, "missing_permissions", graph, value, info,
            params={"error_description": "Missing: " + ", ".join(sorted(missing))},
        )  # fmt: skip

    try:
        me = None
        system_user_id = None
        if configuration.token_type == LoginConfiguration.TokenType.SYSTEM_USER:
            me = graph.get_me(value, fields=("id", "client_business_id"))
            system_user_id = str(me.get("id") or info.user_id or "") or None
        refs = graph.list_assets(value, system_user_id=system_user_id)
    except GraphError as error:
        return refuse(attempt, "asset_listing_failed", graph, value, info, error=error)
    choice = choose_business(info, refs, me, attempt.client)
    if choice.problem:
        chosen = chosen_by_name(choice.business_id, refs)
        return refuse(attempt, choice.problem, graph, value, info,
                      params={"error_description": chosen})  # the name the page shows
    granted = without_other_clients_assets(
        granted_assets(info.granular_scopes, refs), attempt.client, choice.business_id
    )
    if configuration.asset_types and not granted:
        return refuse(attempt, "no_assets", graph, value, info)
    try:
        attempt = _store(attempt, _Checked(value=value, info=info, business_id=choice.business_id, granted=granted))
    except IntegrityError:
        # Another client took this business id between our check and the commit.
        attempt.refresh_from_db()
        return refuse(attempt, "business_taken", graph, value, info)
    # After the commit, as every Graph call: a user token's Page tokens (the sweep keeps them
    # checked; a failure here is logged and the person's connection stands without them).
    derive_quietly(attempt.token, graph)
    return attempt


@transaction.atomic
@sensitive_variables("checked", "result")
def _store(attempt: LoginAttempt, checked: _Checked) -> LoginAttempt:
    client = ClientBusiness.objects.select_for_update().get(pk=attempt.client_id)
    configuration = attempt.configuration
    invitation = attempt.invitation
    contact = invitation.contact if invitation else None
    info = checked.info
    kind = (
        AccessToken.Kind.SYSTEM_USER
        if configuration.token_type == LoginConfiguration.TokenType.SYSTEM_USER
        else AccessToken.Kind.USER
    )
    result = install_token(
        client=client,
        configuration=configuration,
        kind=kind,
        value=checked.value,
        info=info,
        assets=checked.granted,
        granted_by=contact,
        actor="client",
    )
    changed = []
    if checked.business_id and not client.meta_business_id:
        client.meta_business_id = checked.business_id
        changed.append("meta_business_id")
    if client.status != ClientBusiness.Status.ACTIVE and client.can_transition_to(ClientBusiness.Status.ACTIVE):
        client.status = ClientBusiness.Status.ACTIVE
        changed += ["status", "status_changed_at"]
    if changed:
        client.save(update_fields=[*changed, "updated_at"])
    # For user tokens debug_token's user_id is the person; for system users it is the system user.
    if contact is not None and kind == AccessToken.Kind.USER and info.user_id and not contact.meta_user_id:
        contact.meta_user_id = str(info.user_id)
        contact.save(update_fields=["meta_user_id"])

    now = timezone.now()
    attempt.outcome = LoginAttempt.Outcome.SUCCEEDED
    attempt.token = result.token
    attempt.completed_at = now
    attempt.failure_kind = ""
    attempt.save(update_fields=["outcome", "token", "completed_at", "failure_kind"])
    if invitation is not None and invitation.completed_at is None:
        Invitation.objects.filter(pk=invitation.pk, completed_at__isnull=True).update(completed_at=now)
    return attempt


# --- the result page ----------------------------------------------------------------------


@dataclass
class ReconnectComparison:
    previous: AccessToken
    covered: list
    missing: list
    new: list


def connected_grants(token: AccessToken) -> list[AssetGrant]:
    return list(
        token.grants.select_related("asset")
        .exclude(status__in=[AssetGrant.Status.REMOVED, AssetGrant.Status.REVOKED])
        .order_by("asset__kind", "asset__name")
    )


def previous_token(token: AccessToken) -> AccessToken | None:
    """The token this one replaced: the one it superseded, else the last earlier one of the pair."""
    superseded = AccessToken.objects.filter(superseded_by=token).order_by("-created_at").first()
    if superseded is not None:
        return superseded
    return (
        AccessToken.objects.filter(client=token.client_id, configuration=token.configuration_id, pk__lt=token.pk)
        .exclude(kind__in=AccessToken.DERIVED_KINDS)
        .order_by("-pk")
        .first()
    )


def compare_with_previous(token: AccessToken) -> ReconnectComparison | None:
    """Which previously granted assets the new token covers, which are still missing."""
    previous = previous_token(token)
    if previous is None:
        return None
    before = {
        grant.asset_id: grant.asset
        for grant in previous.grants.select_related("asset").exclude(status=AssetGrant.Status.REMOVED)
    }
    now_covered = {grant.asset_id: grant.asset for grant in connected_grants(token)}

    def by_name(assets):
        return sorted(assets, key=lambda asset: (asset.kind, asset.name, asset.meta_id))

    return ReconnectComparison(
        previous=previous,
        covered=by_name(asset for pk, asset in before.items() if pk in now_covered),
        missing=by_name(asset for pk, asset in before.items() if pk not in now_covered),
        new=by_name(asset for pk, asset in now_covered.items() if pk not in before),
    )


def assets_to_reselect(invitation: Invitation) -> list:
    """For a reconnect link: the assets of the client's latest token for this configuration."""
    token = (
        AccessToken.objects.filter(client=invitation.client_id, configuration=invitation.configuration_id)
        .exclude(kind__in=AccessToken.DERIVED_KINDS)
        .order_by("-pk")
        .first()
    )
    if token is None:
        return []
    return [grant.asset for grant in connected_grants(token)]


@dataclass
class PartialConnection:
    missing_types: list[str]  # asset types the configuration asks for that none of the grants is of
    missing_assets: list  # assets the previous connection had that this one does not


def partial_connection(token: AccessToken, configuration: LoginConfiguration, comparison) -> PartialConnection | None:
    """A connection that left out a requested asset type or an asset the client had before (D73)."""
    kinds = set(token.grants.exclude(status__in=[AssetGrant.Status.REMOVED, AssetGrant.Status.REVOKED])
                .values_list("asset__kind", flat=True))  # fmt: skip
    missing_types = [ASSET_TYPES.get(kind, kind) for kind in configuration.asset_types if kind not in kinds]
    missing_assets = list(comparison.missing) if comparison else []
    if not missing_types and not missing_assets:
        return None
    return PartialConnection(missing_types=missing_types, missing_assets=missing_assets)


def renewed_at(invitation: Invitation):
    """When the client reconnected since this reconnect link was made (None: the link still asks).

    Reconnect links are sent to several contacts and by reminders; once one of them is used
    (or the client reconnected some other way) the others say so instead of asking again.
    """
    if invitation.mode != Invitation.Mode.RECONNECT or invitation.completed_at is not None:
        return None
    token = (
        AccessToken.objects.filter(
            client=invitation.client_id,
            configuration=invitation.configuration_id,
            status__in=AccessToken.LIVE_STATUSES,
            created_at__gt=invitation.created_at,
        )
        .exclude(kind__in=AccessToken.DERIVED_KINDS)
        .order_by("created_at")
        .first()
    )
    return token.created_at if token else None
