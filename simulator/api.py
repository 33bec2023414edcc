"""Controls for tests and the demo: seed Meta's fake world, register apps, issue tokens, break things.

Everything here is stable for `seed_demo` and other apps' tests: seeded ids never change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import datetime, timedelta

import requests
from django.db import transaction
from django.db.models import F

from . import core, limits
from .models import (
    SimApp,
    SimAsset,
    SimBusiness,
    SimCode,
    SimConfiguration,
    SimDelivery,
    SimPerson,
    SimState,
    SimSystemUser,
    SimToken,
)

CALLBACK_TIMEOUT_SECONDS = 10


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()

# The fake world. Ids are fixed so the demo and tests can name them.
BUSINESSES = [
    ("9100000000000001", "Acme Bakery"),
    ("9100000000000002", "Bistro Nord"),
    ("9100000000000003", "Cobalt Cycles"),
    ("9100000000000004", "Globex Media"),
]
PEOPLE = [
    ("1000000000000001", "Alice Admin", "alice@acme.example", False, ["9100000000000001", "9100000000000002"]),
    ("1000000000000002", "Bob Baker", "bob@acme.example", False, ["9100000000000001"]),
    ("1000000000000003", "Carla Cycles", "carla@cobalt.example", False, ["9100000000000003"]),
    ("1000000000000004", "Dana Managed", "dana@acme.example", True, ["9100000000000001"]),
    ("1000000000000005", "Gus Globex", "gus@globex.example", False, ["9100000000000004"]),
]
KIND_PREFIX = {
    SimAsset.Kind.PAGE: "20",
    SimAsset.Kind.AD_ACCOUNT: "30",
    SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT: "40",
    SimAsset.Kind.INSTAGRAM_ACCOUNT: "17",
    SimAsset.Kind.CATALOG: "50",
    SimAsset.Kind.PIXEL: "60",
}
KIND_COUNTS = {
    SimAsset.Kind.PAGE: 2,
    SimAsset.Kind.AD_ACCOUNT: 2,
    SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT: 1,
    SimAsset.Kind.INSTAGRAM_ACCOUNT: 1,
    SimAsset.Kind.CATALOG: 1,
    SimAsset.Kind.PIXEL: 1,
}
# Globex has enough Pages to span several pages of results at the default page size (25).
GLOBEX_PAGES = 30


def asset_id_for(kind: str, business_number: int, n: int) -> str:
    return f"{KIND_PREFIX[kind]}{business_number:02d}{n:012d}"


# --- world ---------------------------------------------------------------------------------------


def reset() -> None:
    """Forget everything (apps, world, tokens, faults, clock); issued_secrets() is kept for the leak check."""
    with transaction.atomic():
        for model in (SimDelivery, SimCode, SimToken, SimSystemUser, SimConfiguration, SimAsset, SimPerson):
            model.objects.all().delete()
        SimBusiness.objects.all().delete()
        SimApp.objects.all().delete()
        SimState.objects.all().delete()
        SimState.objects.create(pk=1)


@transaction.atomic
def seed_world() -> None:
    """Create the fake businesses, people and assets; running it again changes nothing."""
    if not SimBusiness.objects.exists():
        _bulk_seed()
        return
    businesses = {}
    for number, (business_id, name) in enumerate(BUSINESSES, start=1):
        business, _ = SimBusiness.objects.get_or_create(business_id=business_id, defaults={"name": name})
        businesses[business_id] = business
        for kind, n, label in _asset_plan(business_id, name):
            SimAsset.objects.get_or_create(
                asset_id=asset_id_for(kind, number, n), defaults={"kind": kind, "name": label, "owner": business}
            )
    for user_id, name, email, managed, business_ids in PEOPLE:
        person, _ = SimPerson.objects.get_or_create(
            user_id=user_id, defaults={"name": name, "email": email, "is_managed_account": managed}
        )
        person.businesses.add(*(businesses[b] for b in business_ids))
    SimAsset.objects.get(asset_id=SHARED_AD_ACCOUNT).client_of.add(businesses[ACME])


# Bistro Nord lets Acme Bakery run one of its ad accounts (Acme's client_ad_accounts edge).
ACME = "9100000000000001"
SHARED_AD_ACCOUNT = asset_id_for(SimAsset.Kind.AD_ACCOUNT, 2, 1)


def _asset_plan(business_id: str, name: str):
    counts = dict(KIND_COUNTS)
    if business_id == "9100000000000004":
        counts[SimAsset.Kind.PAGE] = GLOBEX_PAGES
    for kind, count in counts.items():
        for n in range(1, count + 1):
            yield kind, n, f"{name} {SimAsset.Kind(kind).label} {n}"


def _bulk_seed() -> None:
    """The same world as seed_world(), in a handful of queries (tests seed before each test)."""
    businesses = SimBusiness.objects.bulk_create([SimBusiness(business_id=b, name=n) for b, n in BUSINESSES])
    by_id = {b.business_id: b for b in businesses}
    SimAsset.objects.bulk_create(
        [
            SimAsset(asset_id=asset_id_for(kind, number, n), kind=kind, name=label, owner=business)
            for number, business in enumerate(businesses, start=1)
            for kind, n, label in _asset_plan(business.business_id, business.name)
        ]
    )
    people = SimPerson.objects.bulk_create(
        [SimPerson(user_id=u, name=n, email=e, is_managed_account=m) for u, n, e, m, _ in PEOPLE]
    )
    memberships = SimPerson.businesses.through
    memberships.objects.bulk_create(
        [
            memberships(simperson_id=person.pk, simbusiness_id=by_id[b].pk)
            for person, (*_, business_ids) in zip(people, PEOPLE, strict=True)
            for b in business_ids
        ]
    )
    SimAsset.objects.get(asset_id=SHARED_AD_ACCOUNT).client_of.add(by_id[ACME])


def register_app(
    app_id: str,
    app_secret: str,
    redirect_uris: Iterable[str],
    deauthorize_url: str | None = None,
    data_deletion_url: str | None = None,
    webhook_url: str | None = None,
    require_proof: bool = True,
    name: str = "Tech Provider App",
) -> SimApp:
    core.remember_secret(app_secret)
    app, _ = SimApp.objects.update_or_create(
        app_id=str(app_id),
        defaults={
            "app_secret": app_secret,
            "redirect_uris": list(redirect_uris),
            "deauthorize_url": deauthorize_url or "",
            "data_deletion_url": data_deletion_url or "",
            "webhook_url": webhook_url or "",
            "require_proof": require_proof,
            "name": name,
        },
    )
    return app


def register_configuration(
    config_id: str,
    token_type: str,
    permissions: Iterable[str],
    asset_types: Iterable[str],
    token_expiry: str = "never",  # noqa: S107 (not a secret: an expiry policy)
    *,
    app_id: str | None = None,
    name: str = "",
) -> SimConfiguration:
    token_type = token_type.lower()
    if token_type not in SimConfiguration.TokenType.values:
        raise ValueError(f"token_type must be one of {SimConfiguration.TokenType.values}")
    if token_expiry not in SimConfiguration.Expiry.values:
        raise ValueError(f"token_expiry must be one of {SimConfiguration.Expiry.values}")
    app = SimApp.objects.get(app_id=app_id) if app_id else None
    configuration, _ = SimConfiguration.objects.update_or_create(
        config_id=str(config_id),
        defaults={
            "app": app,
            "name": name or str(config_id),
            "token_type": token_type,
            "permissions": list(permissions),
            "asset_types": list(asset_types),
            "token_expiry": token_expiry,
        },
    )
    return configuration


def _business(business_id: str) -> SimBusiness:
    business = SimBusiness.objects.filter(business_id=business_id).first()
    if business is None:
        raise LookupError(f"The simulator has no business {business_id!r}.")
    return business


def _app(app_id: str | None) -> SimApp:
    if app_id:
        return SimApp.objects.get(app_id=app_id)
    apps = list(SimApp.objects.all()[:2])
    if len(apps) != 1:
        raise LookupError("Name the app: the simulator has no app or several.")
    return apps[0]


def _seconds(value) -> timedelta | None:
    if value is None:
        return None
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


def issue_token(
    *,
    app_id: str | None = None,
    token_type: str = "system_user",  # noqa: S107 (a token kind, not a secret)
    business_id: str = "9100000000000001",
    person_id: str | None = None,
    config_id: str | None = None,
    scopes: Iterable[str] | None = None,
    asset_ids: Iterable[str] | None = None,
    expires_in=DEFAULT,
    data_access_expires_in=DEFAULT,
    issued_at: datetime | None = None,
) -> str:
    """Create a token as if the dialog and code exchange had run; returns its value.

    expires_in / data_access_expires_in: seconds or timedelta, None = never; by default a
    user token is long-lived (60 days) and a system-user token follows its configuration
    (never, or 60 days). Asset ids default to every asset the business owns.
    """
    app = _app(app_id)
    business = _business(business_id)
    configuration = SimConfiguration.objects.get(config_id=config_id) if config_id else None
    kind = SimToken.Type.SYSTEM_USER if token_type.lower() in ("system_user", "system-user") else SimToken.Type.USER
    person = SimPerson.objects.get(user_id=person_id) if person_id else business.people.order_by("user_id").first()
    if scopes is None:
        scopes = (
            configuration.permissions
            if configuration
            else ["business_management", "pages_show_list", "pages_read_engagement", "ads_read"]
        )
    if asset_ids is None:
        asset_ids = business.owned_assets.values_list("asset_id", flat=True)
    if expires_in is DEFAULT:
        expires_in = (
            core.LONG_LIVED_TOKEN if kind == SimToken.Type.USER else core.token_lifetime_for(configuration, kind)
        )
    if data_access_expires_in is DEFAULT:
        data_access_expires_in = core.DATA_ACCESS_LIFETIME
    is_primary = kind == SimToken.Type.SYSTEM_USER
    if is_primary:
        SimToken.objects.filter(app=app, business=business, is_primary=True).update(is_primary=False)
    token = core.create_token(
        app,
        token_type=kind,
        person=person,
        business=business,
        configuration=configuration,
        scopes=list(scopes),
        asset_ids=list(asset_ids),
        at=issued_at or core.now(),
        expires_in=_seconds(expires_in),
        data_access_expires_in=_seconds(data_access_expires_in),
        long_lived=kind == SimToken.Type.USER,
        is_primary=is_primary,
    )
    return token.value


def create_code(
    *,
    redirect_uri: str,
    app_id: str | None = None,
    config_id: str | None = None,
    person_id: str = "1000000000000001",
    business_id: str = "9100000000000001",
    asset_ids: Iterable[str] = (),
    embedded_signup: bool = False,
) -> str:
    """What a person clicking Allow in the dialog produces, without the browser: a fresh code."""
    app = _app(app_id)
    configuration = SimConfiguration.objects.get(config_id=config_id) if config_id else None
    code = core.create_code(
        app,
        redirect_uri=redirect_uri,
        configuration=configuration,
        person=SimPerson.objects.get(user_id=person_id),
        business=_business(business_id),
        asset_ids=list(asset_ids),
        embedded_signup=embedded_signup,
    )
    return code.value


def system_user_id(business_id: str, app_id: str | None = None) -> str:
    return core.system_user_for(_app(app_id), _business(business_id)).system_user_id


# --- events Meta causes ----------------------------------------------------------------------------


def migrate_to_managed_accounts(business_id: str) -> datetime:
    """The business moves to managed Meta accounts; personal-account grants end 30 days later."""
    business = _business(business_id)
    business.managed_accounts_since = core.now()
    business.save(update_fields=["managed_accounts_since"])
    return business.managed_accounts_since + core.MANAGED_ACCOUNT_GRACE


def revoke_permission(permission: str, *, token: str | None = None, person_id: str | None = None) -> int:
    """The person removes one permission from the app (as `DELETE /me/permissions/{permission}`).

    Name the person by one of their tokens or by their user id; every token of theirs loses it
    (Page tokens too). Reads that needed it answer 10 or 200 from then on. Returns how many
    tokens changed.
    """
    if token is not None:
        found = SimToken.objects.filter(value=token).select_related(*core.TOKEN_RELATIONS).first()
        if found is None:
            raise LookupError("The simulator has no such token.")
        return core.revoke(found, permission)
    found = (
        SimToken.objects.filter(person__user_id=person_id, type=SimToken.Type.USER)
        .select_related(*core.TOKEN_RELATIONS)
        .order_by("-id")
        .first()
    )
    if found is None:
        raise LookupError(f"The simulator has no user token of person {person_id!r}.")
    return core.revoke(found, permission)


def page_token(token: str, page_id: str) -> str:
    """The Page token `/me/accounts` hands this user or system-user token for one of its Pages."""
    parent = SimToken.objects.filter(value=token).select_related(*core.TOKEN_RELATIONS).first()
    page = SimAsset.objects.filter(asset_id=page_id, kind=SimAsset.Kind.PAGE).first()
    if parent is None or page is None or page_id not in parent.asset_ids:
        raise LookupError("That token has no such Page.")
    return core.page_token_for(parent, page).value


def throttle_business(business_id: str, *, minutes: float = 60, use_cases: Iterable[str] = ()) -> datetime:
    """Meta throttles one business: its business-use-case calls (ads, Pages with system-user or
    Page tokens, Instagram, WhatsApp, catalogs; or only the use cases named) answer 80004,
    80001, ... with X-Business-Use-Case-Usage at 100 until then. Other businesses are unaffected."""
    from .limits import USE_CASE_CODES

    unknown = set(use_cases) - set(USE_CASE_CODES)
    if unknown:
        raise ValueError(f"Unknown use cases {sorted(unknown)}; Meta's are {sorted(USE_CASE_CODES)}.")
    if minutes <= 0:
        raise ValueError("Throttle for a positive number of minutes.")
    business = _business(business_id)
    business.throttled_until = core.now() + timedelta(minutes=minutes)
    business.throttled_use_cases = sorted(set(use_cases))
    business.save(update_fields=["throttled_until", "throttled_use_cases"])
    return business.throttled_until


def clear_throttles(business_id: str | None = None) -> None:
    businesses = SimBusiness.objects.all()
    if business_id is not None:
        businesses = businesses.filter(pk=_business(business_id).pk)
    businesses.update(throttled_until=None, throttled_use_cases=[])


def expire_data_access(value: str) -> bool:
    """The person's data access to the app ends now (90 days without activity): 190 / 463 from then on."""
    return bool(SimToken.objects.filter(value=value).update(data_access_expires_at=core.now() - timedelta(seconds=1)))


def expire_token(value: str) -> bool:
    """Make the token expired now (190 / 463 from then on)."""
    return bool(SimToken.objects.filter(value=value).update(expires_at=core.now() - timedelta(seconds=1)))


def invalidate_token(value: str, subcode: int = 460) -> bool:
    """Invalidate one token with a 190 subcode (458, 459, 460, 464, 467, 492)."""
    return bool(SimToken.objects.filter(value=value).update(invalid_subcode=subcode, invalid_message=""))


def remove_app(business_id: str, app_id: str | None = None) -> list[SimDelivery]:
    """The business removes the app: its tokens die with 458, then Meta calls the app back.

    Sends a deauthorize callback (signed_request, form POST) per person who granted a token,
    and one `business_integration_uninstall` webhook (X-Hub-Signature-256) per app.
    """
    business = _business(business_id)
    apps = (
        [SimApp.objects.get(app_id=app_id)]
        if app_id
        else list(SimApp.objects.filter(simtoken__business=business).distinct())
    )
    outgoing: list[tuple[SimApp, list[str], list[str]]] = []
    with transaction.atomic():
        for app in apps:
            tokens = SimToken.objects.filter(app=app, business=business)
            user_ids = sorted(set(tokens.exclude(person=None).values_list("person__user_id", flat=True)))
            config_ids = sorted(
                set(tokens.exclude(configuration=None).values_list("configuration__config_id", flat=True))
            )
            core.invalidate_tokens(tokens, 458)
            outgoing.append((app, user_ids, config_ids))
    # Sent after the commit: the app's handler may call Graph back and must see the tokens dead.
    deliveries = []
    at = core.now()
    for app, user_ids, config_ids in outgoing:
        if app.deauthorize_url:
            for user_id in user_ids:
                signed = signed_request(
                    app.app_secret, {"algorithm": "HMAC-SHA256", "issued_at": core.unix(at), "user_id": user_id}
                )
                deliveries.append(_post(app.deauthorize_url, "deauthorize", form={"signed_request": signed}))
        if app.webhook_url:
            value = {"business_manager_id": business.business_id}
            if config_ids:
                value["tp_config_id"] = config_ids[0]
            deliveries.append(_post_webhook(app, _webhook_body(app, "business_integration_uninstall", value)))
    return deliveries


def request_data_deletion(user_id: str, app_id: str | None = None) -> SimDelivery:
    """A person asks Meta to delete their data: the app's data deletion callback gets a signed_request.

    The app's answer (`{"url", "confirmation_code"}`) is kept in `response_body`.
    """
    app = _app(app_id)
    if not app.data_deletion_url:
        raise LookupError(f"App {app.app_id} has no data deletion callback URL.")
    payload = {"algorithm": "HMAC-SHA256", "issued_at": core.unix(core.now()), "user_id": user_id}
    return _post(
        app.data_deletion_url, "data_deletion", form={"signed_request": signed_request(app.app_secret, payload)}
    )


def change_business_assets(
    business_id: str, *, add: Iterable[str] = (), remove: Iterable[str] = (), app_id: str | None = None
) -> SimDelivery | None:
    """Someone at the business changes which assets the app's installation covers.

    Every live token of the app in that business gains/loses those assets, then the
    `business_integration_update` webhook is sent (if the app has a webhook URL).
    """
    app = _app(app_id)
    business = _business(business_id)
    added = [str(a).removeprefix("act_") for a in add]
    removed = {str(a).removeprefix("act_") for a in remove}
    unknown = set(added) - set(SimAsset.objects.filter(asset_id__in=added).values_list("asset_id", flat=True))
    if unknown:
        raise LookupError(f"The simulator has no assets {sorted(unknown)}.")
    config_ids = set()
    with transaction.atomic():
        for token in SimToken.objects.select_for_update().filter(app=app, business=business, invalid_subcode=None):
            token.asset_ids = [a for a in token.asset_ids if a not in removed] + [
                a for a in added if a not in token.asset_ids
            ]
            token.save(update_fields=["asset_ids"])
            if token.configuration_id:
                config_ids.add(token.configuration.config_id)
    if not app.webhook_url:
        return None
    value = {"business_manager_id": business.business_id, "assets_added": added, "assets_removed": sorted(removed)}
    if config_ids:
        value["tp_config_id"] = sorted(config_ids)[0]
    return _post_webhook(app, _webhook_body(app, "business_integration_update", value))


def notify_install(business_id: str, app_id: str | None = None) -> SimDelivery | None:
    """Send `business_integration_install` for the app's installation in that business.

    Meta sends it after a business finishes the dialog; the simulator sends it only when asked,
    so a test decides when the app's webhook handler runs.
    """
    app = _app(app_id)
    business = _business(business_id)
    if not app.webhook_url:
        return None
    token = (
        SimToken.objects.filter(app=app, business=business, invalid_subcode=None)
        .exclude(configuration=None)
        .select_related("configuration")
        .order_by("-id")
        .first()
    )
    value = {"business_manager_id": business.business_id}
    if token:
        value["tp_config_id"] = token.configuration.config_id
    return _post_webhook(app, _webhook_body(app, "business_integration_install", value))


def invalidate_person_tokens(person_id: str, subcode: int = 460) -> int:
    """The person changes their password (460) or is checkpointed (459): all their tokens die."""
    return core.invalidate_tokens(SimToken.objects.filter(person__user_id=person_id, type=SimToken.Type.USER), subcode)


def _webhook_body(app: SimApp, field: str, value: dict) -> dict:
    return {
        "object": "application",
        "entry": [{"id": app.app_id, "time": core.unix(core.now()), "changes": [{"field": field, "value": value}]}],
    }


def signed_request(app_secret: str, payload: dict) -> str:
    encoded = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(app_secret.encode(), encoded.encode(), hashlib.sha256).digest()
    return f"{_b64url(signature)}.{encoded}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _post_webhook(app: SimApp, body: dict) -> SimDelivery:
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + hmac.new(app.app_secret.encode(), raw, hashlib.sha256).hexdigest(),
        "X-Hub-Signature": "sha1=" + hmac.new(app.app_secret.encode(), raw, hashlib.sha1).hexdigest(),
    }
    return _post(app.webhook_url, "webhook", raw=raw, headers=headers)


def _post(url: str, kind: str, *, form: dict | None = None, raw: bytes | None = None, headers=None) -> SimDelivery:
    delivery = SimDelivery(kind=kind, url=url, body=raw.decode() if raw else json.dumps(form), sent_at=core.now())
    try:
        response = requests.post(
            url, data=raw if raw is not None else form, headers=headers, timeout=CALLBACK_TIMEOUT_SECONDS
        )
        delivery.status_code = response.status_code
        delivery.response_body = response.text[:5000]
    except requests.RequestException as exc:
        delivery.error = exc.__class__.__name__
    delivery.save()
    return delivery


# --- faults, clock, counters -----------------------------------------------------------------------


def set_faults(
    error_rate: float = 0.0,
    timeout_rate: float = 0.0,
    rate_limit_rate: float = 0.0,
    latency_ms: int = 0,
    *,
    seed: int | None = None,
    rate_limit_code: int | None = None,
    timeout_hang_ms: int = 0,
    edge_error_rate: float = 0.0,
    edge_retry_after: int = 0,
    throttle_regain_minutes: int = limits.INJECTED_THROTTLE_MINUTES,
) -> None:
    """Inject faults into every later call. With a seed the sequence of faults is reproducible.

    Each request first draws for the edge: below edge_error_rate the edge answers instead of
    Graph, an HTML 502 (a 503 with ``Retry-After: edge_retry_after`` seconds when that is set),
    and Graph never sees the request. Then each call draws once: below timeout_rate it times
    out (504, or null items in a batch, after holding the request timeout_hang_ms); then
    error_rate gives a transient 500/503; then rate_limit_rate a throttling error
    (rate_limit_code, or 80004 on ad accounts, 4 for app tokens, 17 otherwise) whose usage
    headers read 100 with ``estimated_time_to_regain_access`` throttle_regain_minutes.
    Setting faults ends a burst and releases hanging requests.
    """
    for name, rate in (
        ("error_rate", error_rate),
        ("timeout_rate", timeout_rate),
        ("rate_limit_rate", rate_limit_rate),
        ("edge_error_rate", edge_error_rate),
    ):
        if not 0 <= rate <= 1:
            raise ValueError(f"{name} must be between 0 and 1.")
    if error_rate + timeout_rate + rate_limit_rate > 1:
        raise ValueError("The fault rates add up to more than 1.")
    if latency_ms < 0 or timeout_hang_ms < 0:
        raise ValueError("Latency can't be negative.")
    if edge_retry_after < 0 or throttle_regain_minutes < 0:
        raise ValueError("Waiting times can't be negative.")
    core.state()
    SimState.objects.filter(pk=1).update(
        error_rate=error_rate,
        timeout_rate=timeout_rate,
        rate_limit_rate=rate_limit_rate,
        latency_ms=latency_ms,
        fault_seed=seed,
        fault_draws=0,
        rate_limit_code=rate_limit_code,
        timeout_hang_ms=timeout_hang_ms,
        edge_error_rate=edge_error_rate,
        edge_retry_after=edge_retry_after,
        throttle_regain_minutes=throttle_regain_minutes,
        burst_requests=0,
    )
    release_hangs()


def clear_faults() -> None:
    set_faults()


def rate_limit_burst(requests: int, *, regain_minutes: int = 1, code: int | None = None) -> None:
    """Throttle the next ``requests`` HTTP requests whole (every item of a batch): the code Meta
    uses for each call (or ``code``), usage headers at 100, ``estimated_time_to_regain_access``
    ``regain_minutes``. A burst ends by itself; other faults stay as they are."""
    if requests < 0 or regain_minutes < 0:
        raise ValueError("A burst can't be negative.")
    core.state()
    SimState.objects.filter(pk=1).update(
        burst_requests=requests, throttle_regain_minutes=regain_minutes, rate_limit_code=code
    )


def hang_requests(count: int = 1, *, skip: int = 0, seconds: float = 300.0, batches_only: bool = True) -> None:
    """Hold the next ``count`` requests (batches only, by default), after letting ``skip`` through,
    until ``release_hangs()`` or ``seconds`` pass; then each is answered as usual (its caller may
    have given up). ``hanging_requests()`` says how many are being held now."""
    if count < 0 or skip < 0 or seconds < 0:
        raise ValueError("A hang can't be negative.")
    core.state()
    SimState.objects.filter(pk=1).update(
        hang_count=count, hang_skip=skip, hang_seconds=seconds, hang_batches_only=batches_only
    )


def hanging_requests() -> int:
    return SimState.objects.filter(pk=1).values_list("hanging_now", flat=True).first() or 0


def release_hangs() -> None:
    """Let every held request go on, and hold no more."""
    core.state()
    SimState.objects.filter(pk=1).update(hang_count=0, hang_skip=0, hang_generation=F("hang_generation") + 1)


def set_usage(percent: int, *, business_id: str | None = None) -> None:
    """Make the usage headers report at least this percentage (to test slowing down before 100).

    With a business, only that business's X-Business-Use-Case-Usage entries.
    """
    percent = max(0, min(100, int(percent)))
    if business_id is not None:
        SimBusiness.objects.filter(pk=_business(business_id).pk).update(usage_floor_percent=percent)
        return
    core.state()
    SimState.objects.filter(pk=1).update(usage_floor_percent=percent)


def advance_clock(seconds: float) -> datetime:
    core.state()
    SimState.objects.filter(pk=1).update(clock_offset_seconds=F("clock_offset_seconds") + seconds)
    return core.now()


def now() -> datetime:
    return core.now()


def request_count() -> int:
    return core.state().request_count


def call_count() -> int:
    return core.state().call_count


def issued_secrets() -> set[str]:
    """Every token value, code and app secret handed out in this process (for the leak check)."""
    return core.issued_secrets()


def deliveries() -> list[SimDelivery]:
    return list(SimDelivery.objects.all())


def token_summary() -> dict[str, int]:
    at = core.now()
    tokens = list(SimToken.objects.select_related("app"))
    invalid = sum(1 for t in tokens if core.token_problem(t, at))
    return {"valid": len(tokens) - invalid, "invalid": invalid}
