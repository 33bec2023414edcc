"""The simulator's engine: its clock, faults, Meta-shaped errors, token and code lifecycles.

Durations follow docs/meta.md; each one has its reason beside it.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import string
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from .models import (
    SimApp,
    SimAsset,
    SimBusiness,
    SimCode,
    SimConfiguration,
    SimPerson,
    SimState,
    SimSystemUser,
    SimToken,
)

# Authorization codes are single use and short-lived; Embedded Signup's live ~30 s (facts file).
CODE_LIFETIME = timedelta(minutes=10)
EMBEDDED_SIGNUP_CODE_LIFETIME = timedelta(seconds=30)
# A user token from a code is short-lived (about 1-2 hours); the long-lived exchange gives ~60 days.
SHORT_LIVED_USER_TOKEN = timedelta(hours=2)
LONG_LIVED_TOKEN = timedelta(days=60)
# Data access ends 90 days after the person's last activity with the app.
DATA_ACCESS_LIFETIME = timedelta(days=90)
# After a business moves to managed Meta accounts, personal-account grants end 30 days later.
MANAGED_ACCOUNT_GRACE = timedelta(days=30)
# Timestamped appsecret_proof lives 5 minutes.
PROOF_MAX_AGE_SECONDS = 300

ALPHANUMERIC = string.ascii_letters + string.digits

_issued_lock = threading.Lock()
_issued: set[str] = set()


def remember_secret(value: str) -> str:
    """Record a token, code or app secret this process handed out (for the leak check)."""
    with _issued_lock:
        _issued.add(value)
    return value


def issued_secrets() -> set[str]:
    with _issued_lock:
        return set(_issued)


def random_string(length: int) -> str:
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def fbtrace_id() -> str:
    return random_string(11)


# --- state and clock ------------------------------------------------------------------------


def state() -> SimState:
    return SimState.objects.get_or_create(pk=1)[0]


def now() -> datetime:
    """Meta's clock: Django's (so time_machine moves it) plus the offset set by advance_clock()."""
    memo = _memo.get()
    if memo is not None and memo.clock_offset is not None:
        offset = memo.clock_offset
    else:
        offset = SimState.objects.filter(pk=1).values_list("clock_offset_seconds", flat=True).first() or 0
        if memo is not None:
            memo.clock_offset = offset
    return timezone.now() + timedelta(seconds=offset)


# --- what one request has read ------------------------------------------------------------------


class Memo:
    """The rows one Graph request has read, so the 50 items of a batch read each row once.

    Only reads share it: `forget()` drops it after any item that may write (a revoke, a code
    exchange, a new token), so a later item sees the write exactly as a separate request would.
    """

    def __init__(self) -> None:
        self.clock_offset: float | None = None
        self.apps: dict[str, SimApp | None] = {}
        self.tokens: dict[str, SimToken | None] = {}
        self.assets: dict[str, SimAsset | None] = {}
        self.businesses: dict[str, SimBusiness | None] = {}
        self.person_businesses: dict[int, set[str]] = {}

    def app(self, app_id: str) -> SimApp | None:
        if app_id not in self.apps:
            self.apps[app_id] = SimApp.objects.filter(app_id=app_id).first()
        return self.apps[app_id]

    def load_tokens(self, values: Iterable[str]) -> None:
        missing = {v for v in values if v and v not in self.tokens}
        if not missing:
            return
        found = SimToken.objects.select_related(*TOKEN_RELATIONS).filter(value__in=missing)
        self.tokens.update(dict.fromkeys(missing))
        self.tokens.update({t.value: t for t in found})
        self.load_assets({a for t in found for a in t.asset_ids})

    def token(self, value: str) -> SimToken | None:
        self.load_tokens([value])
        return self.tokens[value]

    def load_assets(self, asset_ids: Iterable[str]) -> None:
        missing = {a for a in asset_ids if a not in self.assets}
        if missing:
            self.assets.update(dict.fromkeys(missing))
            self.assets.update(
                {a.asset_id: a for a in SimAsset.objects.select_related("owner").filter(asset_id__in=missing)}
            )

    def assets_among(self, asset_ids: Iterable[str]) -> list[SimAsset]:
        """The assets that exist among these ids, ordered by asset id (SimAsset's ordering)."""
        ids = set(asset_ids)
        self.load_assets(ids)
        return sorted((a for a in (self.assets[i] for i in ids) if a is not None), key=lambda a: a.asset_id)

    def businesses_among(self, business_ids: Iterable[str]) -> list[SimBusiness]:
        ids = set(business_ids)
        missing = {b for b in ids if b not in self.businesses}
        if missing:
            self.businesses.update(dict.fromkeys(missing))
            self.businesses.update({b.business_id: b for b in SimBusiness.objects.filter(business_id__in=missing)})
        return sorted((b for b in (self.businesses[i] for i in ids) if b is not None), key=lambda b: b.business_id)

    def businesses_of(self, person: SimPerson) -> set[str]:
        if person.pk not in self.person_businesses:
            # Everyone this request has met, in one query.
            people = {t.person_id for t in self.tokens.values() if t is not None and t.person_id} | {person.pk}
            people -= set(self.person_businesses)
            found: dict[int, set[str]] = {pk: set() for pk in people}
            through = SimPerson.businesses.through.objects.filter(simperson_id__in=people)
            for person_id, business_id in through.values_list("simperson_id", "simbusiness__business_id"):
                found[person_id].add(business_id)
            self.person_businesses.update(found)
        return set(self.person_businesses[person.pk])


TOKEN_RELATIONS = (
    "app",
    "person",
    "system_user__business",
    "business",
    "page__owner",
    "parent__app",
    "parent__person",
    "parent__business",
    "parent__system_user",
)
_memo: ContextVar[Memo | None] = ContextVar("simulator_memo", default=None)


@contextmanager
def request_memo() -> Iterator[Memo]:
    """Share reads across the calls of one request (see `Memo`)."""
    memo = Memo()
    reset = _memo.set(memo)
    try:
        yield memo
    finally:
        _memo.reset(reset)


def current_memo() -> Memo | None:
    return _memo.get()


def forget() -> None:
    """Drop what this request has read (after a call that may have written)."""
    current = _memo.get()
    if current is not None:
        offset = current.clock_offset
        current.__init__()
        current.clock_offset = offset  # only advance_clock() moves it, never a Graph call


def unix(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def meta_datetime(moment: datetime) -> str:
    """Graph API datetime format, e.g. 2026-12-23T18:00:00+0000."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


# --- errors ---------------------------------------------------------------------------------


class GraphFault(Exception):
    """A Graph API error, rendered exactly in Meta's JSON shape."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        error_type: str = "OAuthException",
        status: int = 400,
        user_title: str | None = None,
        user_msg: str | None = None,
        is_transient: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.subcode = subcode
        self.error_type = error_type
        self.status = status
        self.user_title = user_title
        self.user_msg = user_msg
        self.is_transient = is_transient
        self.headers = headers or {}

    def payload(self, trace_id: str | None = None) -> dict:
        """Meta's error JSON; `trace_id` is the response's x-fb-trace-id, which Meta repeats here."""
        error: dict = {"message": self.message, "type": self.error_type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.user_title:
            error["error_user_title"] = self.user_title
        if self.user_msg:
            error["error_user_msg"] = self.user_msg
        error["is_transient"] = self.is_transient
        error["fbtrace_id"] = trace_id or fbtrace_id()
        return {"error": error}


def missing_object(object_id: str, method: str = "get") -> GraphFault:
    return GraphFault(
        100,
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation. Please read the Graph API documentation at "
        "https://developers.facebook.com/docs/graph-api",
        subcode=33,
        error_type="GraphMethodException",
    )


def missing_parameter(name: str) -> GraphFault:
    return GraphFault(100, f"(#100) The parameter {name} is required")


# 190 subcodes and the messages Meta sends with them.
INVALIDATION_MESSAGES = {
    458: "Error validating access token: The user has not authorized application {app_id}.",
    459: "Error validating access token: You cannot access the app till you log in to www.facebook.com and follow "
    "the instructions given.",
    460: "Error validating access token: The session has been invalidated because the user changed their password "
    "or Facebook has changed the session for security reasons.",
    463: "Error validating access token: Session has expired on {expired}. The current time is {now}.",
    464: "Error validating access token: Sessions for the user are not allowed because the user is not a confirmed "
    "user.",
    467: "Error validating access token: The session is invalid because the user logged out.",
    492: "Error validating access token: The session is invalid because the user's role on the page changed.",
}


def _human_time(moment: datetime) -> str:
    return moment.strftime("%A, %d-%b-%y %H:%M:%S UTC")


DATA_ACCESS_EXPIRED_MESSAGE = (
    "Error validating access token: Data access for this user expired on {expired}. The current time is {now}. "
    "The person must log in to the app again."
)
PAGE_ROLE_CHANGED_MESSAGE = INVALIDATION_MESSAGES[492]


def token_problem(token: SimToken, at: datetime) -> tuple[int | None, str] | None:
    """Why this token no longer works, as (190 subcode, message), or None while it is valid.

    A Page token also dies with the access of the token it was derived from: that token's own
    problem (invalidated, expired, data access ended), or the person's access to the Page ending
    after a managed-accounts migration (D14).
    """
    if token.invalid_subcode is not None:
        template = token.invalid_message or INVALIDATION_MESSAGES.get(
            token.invalid_subcode, "Invalid OAuth access token."
        )
        return token.invalid_subcode, template.format(app_id=token.app.app_id, expired="", now="")
    if token.expires_at is not None and token.expires_at <= at:
        return 463, INVALIDATION_MESSAGES[463].format(expired=_human_time(token.expires_at), now=_human_time(at))
    if token.type == SimToken.Type.USER and token.data_access_expires_at and token.data_access_expires_at <= at:
        return 463, DATA_ACCESS_EXPIRED_MESSAGE.format(
            expired=_human_time(token.data_access_expires_at), now=_human_time(at)
        )
    if token.type == SimToken.Type.PAGE and token.parent is not None:
        problem = token_problem(token.parent, at)
        if problem:
            return problem
        ends = personal_access_ends(token.parent, token.page.owner) if token.page else None
        if ends is not None and ends <= at:
            return 492, PAGE_ROLE_CHANGED_MESSAGE
    return None


# What Meta shows the person for a dead session (error_user_title / error_user_msg).
INVALIDATION_USER_TEXT = {
    458: ("App not installed", "The app is no longer connected to your account. Connect it again to continue."),
    460: ("Session expired", "Your session ended because your password changed. Log in again to continue."),
    463: ("Session expired", "Your session has expired. Log in again to continue."),
}


def invalid_token_fault(subcode: int | None, message: str) -> GraphFault:
    title, text = INVALIDATION_USER_TEXT.get(subcode, (None, None))
    return GraphFault(190, message, subcode=subcode, user_title=title, user_msg=text)


# --- callers --------------------------------------------------------------------------------


@dataclass
class Caller:
    """Who a Graph call is made as: an app (app access token) or a user/system-user token."""

    app: SimApp
    token: SimToken | None = None
    raw: str = field(default="", repr=False)

    @property
    def is_app(self) -> bool:
        return self.token is None


def parse_app_token(value: str) -> SimApp | None:
    app_id, sep, secret = value.partition("|")
    if not sep:
        return None
    memo = _memo.get()
    app = memo.app(app_id) if memo is not None else SimApp.objects.filter(app_id=app_id).first()
    if app is None or not hmac.compare_digest(app.app_secret, secret):
        return None
    return app


def find_token(value: str) -> SimToken | None:
    memo = _memo.get()
    if memo is not None:
        return memo.token(value)
    return SimToken.objects.select_related(*TOKEN_RELATIONS).filter(value=value).first()


def resolve_caller(value: str | None, at: datetime) -> Caller:
    if not value:
        raise GraphFault(104, "An access token is required to request this resource.")
    if "|" in value:
        app = parse_app_token(value)
        if app is None:
            raise invalid_token_fault(None, "Invalid OAuth access token signature.")
        return Caller(app=app, raw=value)
    token = find_token(value)
    if token is None:
        raise invalid_token_fault(None, "Invalid OAuth access token - Cannot parse access token")
    problem = token_problem(token, at)
    if problem:
        raise invalid_token_fault(*problem)
    return Caller(app=token.app, token=token, raw=value)


def appsecret_proof(secret: str, token: str, proof_time: str | None = None) -> str:
    message = f"{token}|{proof_time}" if proof_time else token
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def check_proof(caller: Caller, params: dict, *, required: bool | None = None) -> None:
    """Validate appsecret_proof (plain or timestamped) as Meta does; app tokens carry the secret already."""
    proof = params.get("appsecret_proof") or ""
    proof_time = params.get("appsecret_time") or None
    if required is None:
        required = caller.app.require_proof and not caller.is_app
    if not proof:
        if required:
            raise GraphFault(
                100, "API calls from the server require an appsecret_proof argument", error_type="GraphMethodException"
            )
        return
    invalid = GraphFault(100, "Invalid appsecret_proof provided in the API argument", error_type="GraphMethodException")
    if proof_time is not None:
        # The caller's clock is real time, so the 5-minute window is checked against Django's
        # clock, not the simulator's advanced one.
        try:
            age = timezone.now().timestamp() - int(proof_time)
        except ValueError:
            raise invalid
        if abs(age) > PROOF_MAX_AGE_SECONDS:
            raise invalid
    expected = appsecret_proof(caller.app.app_secret, caller.raw, proof_time)
    if not hmac.compare_digest(expected, proof.lower()):
        raise invalid


# --- faults and usage -------------------------------------------------------------------------


def uniform(current: SimState) -> float:
    """One draw in [0, 1): from the seed's sequence when one is set (a run replays exactly)."""
    if current.fault_seed is None:
        return random.random()
    with transaction.atomic():
        draw = SimState.objects.select_for_update().get(pk=1).fault_draws
        SimState.objects.filter(pk=1).update(fault_draws=F("fault_draws") + 1)
    return random.Random(f"{current.fault_seed}:{draw}").random()


def draw_fault(current: SimState) -> str | None:
    """One uniform draw per call decides timeout, error or rate limit; seeded draws replay exactly."""
    total = current.timeout_rate + current.error_rate + current.rate_limit_rate
    if total <= 0:
        return None
    u = uniform(current)
    if u < current.timeout_rate:
        return "timeout"
    if u < current.timeout_rate + current.error_rate:
        return "error"
    if u < total:
        return "rate_limit"
    return None


def transient_fault(sequence: int) -> GraphFault:
    if sequence % 2:
        return GraphFault(
            2, "Service temporarily unavailable", error_type="OAuthException", status=503, is_transient=True
        )
    return GraphFault(1, "An unknown error occurred", error_type="OAuthException", status=500, is_transient=True)


def timeout_fault() -> GraphFault:
    return GraphFault(
        2,
        "An unexpected error has occurred. Please retry your request later.",
        status=504,
        is_transient=True,
    )


def app_calls_per_hour() -> int:
    return int(getattr(settings, "SIMULATOR_APP_CALLS_PER_HOUR", 100_000))


def record_calls(calls: int, at: datetime) -> SimState:
    """Count HTTP requests and Graph calls (an ?ids= list or a batch counts each object/item).

    One conditional UPDATE (the database serialises concurrent ones on the row) instead of a
    locking read and a write: it runs for every request, so it is on the simulator's hot path.
    """
    window_over = Q(window_started_at__isnull=True) | Q(window_started_at__lte=at - timedelta(hours=1))
    counted = SimState.objects.filter(pk=1).update(
        window_calls=Case(When(window_over, then=Value(calls)), default=F("window_calls") + calls),
        window_started_at=Case(When(window_over, then=Value(at)), default=F("window_started_at")),
        call_count=F("call_count") + calls,
        request_count=F("request_count") + 1,
    )
    if not counted:
        state()
        return record_calls(calls, at)
    return SimState.objects.get(pk=1)


def usage_percent(current: SimState) -> int:
    share = current.window_calls * 100 // max(app_calls_per_hour(), 1)
    return int(min(100, max(current.usage_floor_percent, share)))


# --- assets and grants -----------------------------------------------------------------------

# Which asset kind each permission is granted on (granular_scopes target_ids).
PERMISSION_TARGETS = {
    "ads_management": SimAsset.Kind.AD_ACCOUNT,
    "ads_read": SimAsset.Kind.AD_ACCOUNT,
    "attribution_read": SimAsset.Kind.AD_ACCOUNT,
    "business_management": "business",
    "catalog_management": SimAsset.Kind.CATALOG,
    "instagram_basic": SimAsset.Kind.INSTAGRAM_ACCOUNT,
    "instagram_content_publish": SimAsset.Kind.INSTAGRAM_ACCOUNT,
    "instagram_manage_comments": SimAsset.Kind.INSTAGRAM_ACCOUNT,
    "instagram_manage_insights": SimAsset.Kind.INSTAGRAM_ACCOUNT,
    "instagram_manage_messages": SimAsset.Kind.INSTAGRAM_ACCOUNT,
    "instagram_shopping_tag_products": SimAsset.Kind.INSTAGRAM_ACCOUNT,
    "leads_retrieval": SimAsset.Kind.PAGE,
    "page_events": SimAsset.Kind.PAGE,
    "pages_manage_ads": SimAsset.Kind.PAGE,
    "pages_manage_cta": SimAsset.Kind.PAGE,
    "pages_manage_engagement": SimAsset.Kind.PAGE,
    "pages_manage_instant_articles": SimAsset.Kind.PAGE,
    "pages_manage_metadata": SimAsset.Kind.PAGE,
    "pages_manage_posts": SimAsset.Kind.PAGE,
    "pages_messaging": SimAsset.Kind.PAGE,
    "pages_read_engagement": SimAsset.Kind.PAGE,
    "pages_read_user_content": SimAsset.Kind.PAGE,
    "pages_show_list": SimAsset.Kind.PAGE,
    "read_insights": SimAsset.Kind.PAGE,
    "whatsapp_business_management": SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT,
    "whatsapp_business_messaging": SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT,
}


def effective_scopes(token: SimToken) -> list[str]:
    """A Page token holds the permissions of the token it came from, as they are now."""
    if token.type == SimToken.Type.PAGE and token.parent is not None:
        return list(token.parent.scopes)
    return list(token.scopes)


def granular_scopes(token: SimToken) -> list[dict]:
    memo = _memo.get()
    if memo is not None:
        assets = [(a.asset_id, a.kind) for a in memo.assets_among(token.asset_ids)]
    else:
        assets = list(SimAsset.objects.filter(asset_id__in=token.asset_ids).values_list("asset_id", "kind"))
    result = []
    for scope in effective_scopes(token):
        kind = PERMISSION_TARGETS.get(scope)
        if kind is None:
            result.append({"scope": scope})
        elif kind == "business":
            result.append({"scope": scope, "target_ids": [token.business.business_id] if token.business else []})
        else:
            result.append({"scope": scope, "target_ids": [a for a, k in assets if k == kind]})
    return result


# Reading an asset needs one of the permissions granted on its kind (pixels go with ad accounts);
# a business node and its edges need business_management.
READ_PERMISSIONS: dict[str, frozenset[str]] = {
    kind: frozenset(p for p, target in PERMISSION_TARGETS.items() if target == kind)
    for kind in {*SimAsset.Kind.values, "business"}
}
READ_PERMISSIONS[SimAsset.Kind.PIXEL] = READ_PERMISSIONS[SimAsset.Kind.AD_ACCOUNT]

# Meta documents the codes (10, 200-299) and these messages are the ones it sends for each kind;
# which kind gets 10 and which 200 is the simulator's choice (D14).
PERMISSION_ERRORS = {
    SimAsset.Kind.PAGE: (
        10,
        "(#10) This endpoint requires the 'pages_read_engagement' permission or the 'Page Public Content Access' "
        "feature.",
    ),
    SimAsset.Kind.AD_ACCOUNT: (200, "(#200) Ad account owner has NOT grant ads_management or ads_read permission"),
    SimAsset.Kind.PIXEL: (200, "(#200) Ad account owner has NOT grant ads_management or ads_read permission"),
    SimAsset.Kind.INSTAGRAM_ACCOUNT: (10, "(#10) Application does not have permission for this action"),
    SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT: (
        200,
        "(#200) Requires whatsapp_business_management permission to manage the object",
    ),
    SimAsset.Kind.CATALOG: (200, "(#200) Requires catalog_management permission to manage the object"),
    "business": (200, "(#200) Requires business_management permission to manage the object"),
}


def require_permission(token: SimToken | None, kind: str) -> None:
    """Refuse a read the token's permissions no longer cover (app tokens read as the app)."""
    if token is None or READ_PERMISSIONS[kind] & set(effective_scopes(token)):
        return
    code, message = PERMISSION_ERRORS[kind]
    raise GraphFault(code, message)


def grantor(token: SimToken) -> SimToken:
    """The token whose grant a Page token rides on (the token itself otherwise)."""
    if token.type == SimToken.Type.PAGE and token.parent is not None:
        return token.parent
    return token


def personal_access_ends(token: SimToken | None, business: SimBusiness) -> datetime | None:
    """When a personal-account grant on this business's assets ends (managed-accounts migration)."""
    if token is None:
        return None
    token = grantor(token)
    if token.type != SimToken.Type.USER or business.managed_accounts_since is None:
        return None
    if token.person and token.person.is_managed_account:
        return None
    return business.managed_accounts_since + MANAGED_ACCOUNT_GRACE


def token_business_ids(token: SimToken) -> set[str]:
    """The businesses a token reaches: a person's through their roles; a system user's (and a
    Page token's from it) only the client business that installed the app."""
    ids = {token.business.business_id} if token.business else set()
    if token.type == SimToken.Type.USER and token.person:
        memo = _memo.get()
        if memo is not None:
            ids |= memo.businesses_of(token.person)
        else:
            ids |= set(token.person.businesses.values_list("business_id", flat=True))
    return ids


def in_client_business(token: SimToken, asset: SimAsset) -> bool:
    """A system-user token reaches only assets its business owns or manages for another business."""
    if grantor(token).type != SimToken.Type.SYSTEM_USER or token.business_id is None:
        return True
    if asset.owner_id == token.business_id:
        return True
    return asset.client_of.filter(pk=token.business_id).exists()


# --- issuing ----------------------------------------------------------------------------------


def new_token_value() -> str:
    return remember_secret("EAA" + random_string(180))


def system_user_for(app: SimApp, business: SimBusiness) -> SimSystemUser:
    digest = hashlib.sha256(f"{app.app_id}:{business.business_id}".encode()).hexdigest()
    system_user_id = "6" + str(int(digest[:16], 16))[:14].rjust(14, "0")
    return SimSystemUser.objects.get_or_create(
        app=app,
        business=business,
        defaults={"system_user_id": system_user_id, "name": f"{app.name} system user"},
    )[0]


def create_token(
    app: SimApp,
    *,
    token_type: str,
    person: SimPerson | None,
    business: SimBusiness | None,
    configuration: SimConfiguration | None,
    scopes: list[str],
    asset_ids: list[str],
    at: datetime,
    expires_in: timedelta | None,
    data_access_expires_in: timedelta | None = DATA_ACCESS_LIFETIME,
    long_lived: bool = False,
    parent: SimToken | None = None,
    is_primary: bool = False,
) -> SimToken:
    system_user = None
    if token_type == SimToken.Type.SYSTEM_USER:
        if business is None:
            raise ValueError("A system-user token needs a business.")
        system_user = system_user_for(app, business)
    elif token_type == SimToken.Type.USER and "public_profile" not in scopes:
        # Granted automatically with any user token (facts file).
        scopes = [*scopes, "public_profile"]
    return SimToken.objects.create(
        value=new_token_value(),
        app=app,
        type=token_type,
        person=person,
        system_user=system_user,
        business=business,
        configuration=configuration,
        parent=parent,
        scopes=list(scopes),
        asset_ids=[str(a).removeprefix("act_") for a in asset_ids],
        issued_at=at,
        expires_at=at + expires_in if expires_in else None,
        data_access_expires_at=at + data_access_expires_in if data_access_expires_in else None,
        long_lived=long_lived,
        is_primary=is_primary,
    )


def page_token_for(parent: SimToken, page: SimAsset) -> SimToken:
    """The Page token a user or system-user token gets for one of its Pages (`/me/accounts`).

    One per (token, Page), so reading the edge twice answers the same token, as Meta's do while
    nothing changes. From a long-lived user token it never expires by itself (`expires_at: 0`);
    from a short-lived one it lives as long; either way it dies with its parent's access.
    """
    existing = SimToken.objects.select_related(*TOKEN_RELATIONS).filter(
        type=SimToken.Type.PAGE, parent=parent, page=page
    )
    found = existing.first()
    if found is not None:
        return found
    never = parent.type == SimToken.Type.USER and parent.long_lived
    try:
        with transaction.atomic():
            SimToken.objects.create(
                value=new_token_value(),
                app=parent.app,
                type=SimToken.Type.PAGE,
                person=parent.person,
                system_user=parent.system_user,
                business=parent.business,
                configuration=parent.configuration,
                parent=parent,
                page=page,
                scopes=list(parent.scopes),
                asset_ids=[page.asset_id],
                issued_at=now(),
                expires_at=None if never else parent.expires_at,
                data_access_expires_at=parent.data_access_expires_at,
                long_lived=never,
            )
    except IntegrityError:
        pass  # another request made it first
    return existing.get()


def token_lifetime_for(configuration: SimConfiguration | None, token_type: str) -> timedelta | None:
    if token_type == SimToken.Type.USER:
        return SHORT_LIVED_USER_TOKEN
    if configuration and configuration.token_expiry == SimConfiguration.Expiry.SIXTY_DAYS:
        return LONG_LIVED_TOKEN
    return None


def create_code(
    app: SimApp,
    *,
    redirect_uri: str,
    configuration: SimConfiguration | None,
    person: SimPerson,
    business: SimBusiness | None,
    asset_ids: list[str],
    scopes: list[str] | None = None,
    embedded_signup: bool = False,
) -> SimCode:
    at = now()
    lifetime = EMBEDDED_SIGNUP_CODE_LIFETIME if embedded_signup else CODE_LIFETIME
    return SimCode.objects.create(
        value=remember_secret("AQ" + random_string(220)),
        app=app,
        redirect_uri=redirect_uri,
        configuration=configuration,
        person=person,
        business=business,
        asset_ids=[str(a).removeprefix("act_") for a in asset_ids],
        scopes=scopes or [],
        created_at=at,
        expires_at=at + lifetime,
    )


def revoke(token: SimToken, permission: str | None) -> int:
    """The person (or system user) behind this token removes one permission, or the app.

    Their grant is one, whichever of their tokens asks: every token of theirs for this app
    loses the permission (declined from then on), and Page tokens with them, since a Page
    token reads its parent's permissions. Without a permission the app is removed: 190/458.
    """
    token = grantor(token)
    if token.type == SimToken.Type.SYSTEM_USER:
        tokens = SimToken.objects.filter(app=token.app, system_user=token.system_user)
    else:
        tokens = SimToken.objects.filter(app=token.app, person=token.person, type=SimToken.Type.USER)
    if not permission:
        return invalidate_tokens(tokens, 458)
    changed = 0
    with transaction.atomic():
        for each in tokens.select_for_update():
            if permission in each.scopes:
                each.scopes = [s for s in each.scopes if s != permission]
                each.declined_scopes = [*each.declined_scopes, permission]
                each.save(update_fields=["scopes", "declined_scopes"])
                changed += 1
    return changed


def invalidate_tokens(tokens, subcode: int, message: str = "") -> int:
    return tokens.filter(invalid_subcode__isnull=True).update(invalid_subcode=subcode, invalid_message=message)
