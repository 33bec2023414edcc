"""Replace expired tokens: one new token and a list of asset ids; the grants the token covers move to it.

Meta's guidance to Tech Providers asks for a "Reconnect" action that sends the server a list of
business asset ids and one new access token, which the server then uses for each of those assets.
``reconnect_assets`` is that action (the API's ``POST /api/v1/reconnect`` calls it): the token is
inspected with ``debug_token`` (our app, valid, a user or system-user token, the configuration's
permissions), a short-lived user token is exchanged for a long-lived one, and the token is stored
by ``install_token`` exactly as onboarding stores it (superseding the client's live token of that
configuration, never deleting it). Each asset asked about gets one status:

- ``moved``: its grant now points at the new token;
- ``already_current``: it already did (the same request again changes nothing);
- ``not_covered``: an asset of the client the new token's grant does not include;
- ``other_client``: an asset of a different client than the one the token is for;
- ``unknown``: not an asset of ours (or of a client the caller may not see).

A bad request or a bad token is refused as a whole (``ReconnectRefused``) and nothing is written;
so is a request in which no asset can move. Every call to Meta happens before the one
transaction that writes (decisions.md D75).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from graph.errors import GraphError, InvalidTokenError
from graph.permissions import USER_ONLY

from . import crypto
from .install import GrantedAsset, granted_assets, install_token
from .models import AccessToken, Asset, AssetGrant

logger = logging.getLogger(__name__)

MOVED = "moved"
ALREADY_CURRENT = "already_current"
NOT_COVERED = "not_covered"
OTHER_CLIENT = "other_client"
UNKNOWN = "unknown"
STATUSES = (MOVED, ALREADY_CURRENT, NOT_COVERED, OTHER_CLIENT, UNKNOWN)

MESSAGES = {
    MOVED: "Moved to the new token.",
    ALREADY_CURRENT: "Already served by this token: nothing to move.",
    NOT_COVERED: "The new token's grant does not include this asset: ask the person to select it in Meta's window.",
    OTHER_CLIENT: "This asset belongs to a different client than the one the token was granted for.",
    UNKNOWN: "No asset with this id is known to the portal.",
}

ASSET_ID_RE = re.compile(r"^(act_)?[0-9]{1,30}$")
# Short-lived user tokens live an hour or two, long-lived ones about 60 days (docs/meta.md).
SHORT_LIVED = timedelta(days=1)
TOKEN_KINDS = {"USER": AccessToken.Kind.USER, "SYSTEM_USER": AccessToken.Kind.SYSTEM_USER}
CONFIGURATION_TYPES = {AccessToken.Kind.USER: "user", AccessToken.Kind.SYSTEM_USER: "system_user"}


def max_assets() -> int:
    return int(getattr(settings, "RECONNECT_MAX_ASSETS", 100))


class ReconnectRefused(Exception):
    """The request as a whole can't be done: nothing was written. ``status`` is the HTTP answer."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


@dataclass
class AssetOutcome:
    asset_id: str
    status: str
    message: str
    kind: str | None = None
    name: str | None = None


@dataclass
class ReconnectResult:
    token: AccessToken | None
    client_id: int | None
    configuration_id: int | None
    assets: list[AssetOutcome] = field(default_factory=list)
    replaced_token_id: int | None = None
    created: bool = False

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.assets if outcome.status == status)


def normalize_asset_ids(asset_ids) -> list[str]:
    """The ids as stored (an ad account's ``act_<n>`` is ``<n>``), in order; refuses what can't be asked."""
    if not isinstance(asset_ids, list | tuple) or not asset_ids:
        raise ReconnectRefused(422, "no_assets", "Send the asset ids to reconnect in “asset_ids” (a non-empty list).")
    if len(asset_ids) > max_assets():
        raise ReconnectRefused(
            422, "too_many_assets", f"At most {max_assets()} asset ids per request; {len(asset_ids)} were sent."
        )
    bad = [repr(each)[:40] for each in asset_ids if not isinstance(each, str) or not ASSET_ID_RE.match(each)]
    if bad:
        raise ReconnectRefused(
            422, "malformed_asset_id", f"Asset ids are Meta's numbers (an ad account's may start act_): {bad[0]}."
        )
    ids = [each.removeprefix("act_") for each in asset_ids]
    duplicates = sorted({each for each in ids if ids.count(each) > 1})
    if duplicates:
        raise ReconnectRefused(
            422, "duplicate_asset_ids", f"Each asset id once per request; repeated: {', '.join(duplicates[:5])}."
        )
    return ids


@sensitive_variables("value")
def inspect_token(value: str, graph):
    """``debug_token`` of a token someone hands us, refused unless it is a valid user or system-user token of ours.

    A short-lived user token is exchanged for a long-lived one first. Returns (value, info).
    """
    if not isinstance(value, str) or not value.strip() or len(value) > 2000 or any(c.isspace() for c in value):
        raise ReconnectRefused(422, "missing_token", "Send the new access token in “access_token”.")
    try:
        info = graph.debug_token(value)
    except InvalidTokenError:
        raise ReconnectRefused(422, "token_invalid", "Meta says this token is not valid: nothing was moved.")
    except GraphError as error:
        raise ReconnectRefused(502, "meta_unavailable", f"Meta did not answer the token check ({error.code}); "
                               "nothing was moved, try again.")  # fmt: skip
    if str(info.app_id or "") != str(settings.META_APP_ID):
        raise ReconnectRefused(422, "wrong_app", "This token was issued to another app: nothing was moved.")
    if not info.is_valid:
        subcode = getattr(info.error, "subcode", None)
        if subcode == 463:
            raise ReconnectRefused(422, "token_expired", "This token has expired: nothing was moved.")
        raise ReconnectRefused(422, "token_invalid", "Meta says this token is not valid: nothing was moved.")
    if info.type not in TOKEN_KINDS:
        raise ReconnectRefused(
            422, "wrong_token_type", f"A {info.type or 'unknown'} token can't serve assets: send a user or system-user "
            "token from Facebook Login for Business.",
        )  # fmt: skip
    if info.type == "USER" and _short_lived(info):
        try:
            value = graph.exchange_long_lived(value).access_token
            info = graph.debug_token(value)
        except GraphError as error:
            raise ReconnectRefused(502, "exchange_failed", "Meta did not exchange the short-lived token for a "
                                   f"long-lived one ({error.code}): nothing was moved.")  # fmt: skip
    return value, info


def _short_lived(info) -> bool:
    if info.expires_at is None:
        return False
    issued = info.issued_at or info.expires_at - SHORT_LIVED * 2
    return info.expires_at - issued <= SHORT_LIVED


@sensitive_variables("value")
def token_coverage(value: str, info, graph) -> tuple[list[GrantedAsset], set[str]]:
    """What the token reaches (as onboarding reads it) and the businesses it names."""
    businesses = {
        str(target)
        for entry in info.granular_scopes or []
        if entry.get("scope") == "business_management"
        for target in entry.get("target_ids") or []
    }
    try:
        system_user_id = None
        if info.type == "SYSTEM_USER":
            me = graph.get_me(value, fields=("id", "client_business_id"))
            system_user_id = str(me.get("id") or info.user_id or "") or None
            if me.get("client_business_id"):
                businesses = {str(me["client_business_id"])}
        refs = graph.list_assets(value, system_user_id=system_user_id)
    except GraphError as error:
        raise ReconnectRefused(502, "meta_unavailable", f"Meta did not list the token's assets ({error.code}); "
                               "nothing was moved, try again.")  # fmt: skip
    granted = granted_assets(info.granular_scopes or [], refs)
    if info.type != "SYSTEM_USER":  # a person's grant: the businesses owning what they selected count too
        businesses |= {item.business_id for item in granted if item.business_id and item.kind != "business"}
    return granted, businesses


def _choose_client(assets: list[Asset], covered: set[str], businesses: set[str], client_ids) -> int | None:
    """The client the token is for: the one owning the covered assets asked about, else the one owning any
    asset the token covers; when several, the one whose business the token names."""
    candidates = {asset.client_id for asset in assets if asset.meta_id in covered}
    if not candidates:
        reached = Asset.objects.filter(meta_id__in=covered, client__isnull=False)
        candidates = set(reached.values_list("client_id", flat=True))
        if client_ids is not None:
            candidates &= set(client_ids)
    if not candidates:
        return None
    named = set(
        AccessToken.client.field.related_model.objects.filter(pk__in=candidates, meta_business_id__in=businesses)
        .values_list("pk", flat=True)
    )  # fmt: skip
    if len(named) == 1:
        return next(iter(named))
    if len(candidates) == 1:
        return next(iter(candidates))
    raise ReconnectRefused(
        409, "several_clients", "The token covers assets of several clients: send one request per client."
    )


def _current_grants(client_id: int, asset_pks: Collection[int]) -> dict[int, AssetGrant]:
    """Per asset, the newest grant a token of this client (not derived) has on it."""
    found: dict[int, AssetGrant] = {}
    grants = (
        AssetGrant.objects.filter(asset_id__in=asset_pks, token__client_id=client_id)
        .exclude(token__kind__in=AccessToken.DERIVED_KINDS)
        .exclude(token__status=AccessToken.Status.REVOKED)
        .select_related("token__configuration")
        .order_by("asset_id", "-token__created_at", "-pk")
    )
    for grant in grants:
        found.setdefault(grant.asset_id, grant)
    return found


@sensitive_variables("value", "access_token")
def reconnect_assets(
    access_token: str,
    asset_ids: Sequence[str],
    *,
    graph=None,
    client_ids: Collection[int] | None = None,
    configuration_ids: Collection[int] | None = None,
    actor: str = "api",
) -> ReconnectResult:
    """Move the grants of ``asset_ids`` that ``access_token`` covers to it (see the module's docstring).

    ``client_ids`` / ``configuration_ids``: the caller's limits (None: all); assets outside them
    answer ``unknown``, as if they did not exist. Raises ``ReconnectRefused``.
    """
    ids = normalize_asset_ids(asset_ids)
    if graph is None:
        from common.meta import graph_client

        graph = graph_client()
    value, info = inspect_token(access_token, graph)
    granted, businesses = token_coverage(value, info, graph)
    covered = {item.meta_id for item in granted}

    known = [
        asset for asset in Asset.objects.select_related("client").filter(meta_id__in=ids, client__isnull=False)
        if client_ids is None or asset.client_id in client_ids
    ]  # fmt: skip
    by_id = {asset.meta_id: asset for asset in known}
    client_id = _choose_client(known, covered, businesses, client_ids)
    kind = TOKEN_KINDS[info.type]

    current = _current_grants(client_id, [a.pk for a in known if a.client_id == client_id]) if client_id else {}
    existing = AccessToken.objects.filter(fingerprint=crypto.fingerprint(value)).first()
    if existing is not None and client_id is not None and existing.client_id != client_id:
        raise ReconnectRefused(409, "token_of_another_client", "This token is stored for a different client than "
                               "the one these assets belong to: nothing was moved.")  # fmt: skip
    if existing is not None and not existing.is_live():
        raise ReconnectRefused(422, "token_replaced", f"This token is {existing.get_status_display().lower()} in "
                               "the portal already: send the newest token. Nothing was moved.")  # fmt: skip
    configuration = _configuration(current, kind, existing, configuration_ids)
    outcomes: list[AssetOutcome] = []
    movable = False
    for meta_id in ids:
        asset = by_id.get(meta_id)
        grant = current.get(asset.pk) if asset is not None else None  # the newest grant of the token's client
        if asset is None:
            status = UNKNOWN
        elif asset.client_id != client_id:
            status = OTHER_CLIENT
        elif meta_id not in covered:
            status = NOT_COVERED
        elif existing is not None and grant is not None and grant.token_id == existing.pk and existing.is_live():
            status = ALREADY_CURRENT
        else:
            status = MOVED
            movable = True
        # Another client's asset is named by neither kind nor name: the caller learns only that it is not this one's.
        shown = asset if status not in (UNKNOWN, OTHER_CLIENT) else None
        outcomes.append(AssetOutcome(meta_id, status, MESSAGES[status], shown.kind if shown else None,
                                     (shown.name or None) if shown else None))  # fmt: skip
    if not movable:
        return ReconnectResult(existing, client_id, configuration.pk if configuration else None, outcomes)
    if configuration is None:
        raise ReconnectRefused(
            409, "no_configuration", "None of these assets was connected through a login configuration this token "
            f"can replace (a {kind.replace('_', '-')} token): connect them through an invitation first.",
        )  # fmt: skip
    missing = sorted(set(configuration.permissions) - set(info.scopes or []) - USER_ONLY)
    if missing:
        raise ReconnectRefused(
            422, "missing_permissions", f"The token lacks permissions its configuration “{configuration.name}” needs: "
            f"{', '.join(missing)}. Nothing was moved.",
        )  # fmt: skip

    client = next(asset.client for asset in known if asset.client_id == client_id)
    # Every asset the token covers is stored with it, as onboarding stores a grant; other clients' are not theirs.
    theirs = set(
        Asset.objects.filter(meta_id__in=covered, client__isnull=False).exclude(client_id=client_id)
        .values_list("meta_id", flat=True)
    )  # fmt: skip
    previous = (
        AccessToken.objects.filter(client_id=client_id, configuration=configuration)
        .exclude(kind__in=AccessToken.DERIVED_KINDS)
        .order_by("-created_at")
        .first()
    )
    granted_by = client.contacts.filter(meta_user_id=str(info.user_id or "")).first() if info.user_id else None
    if granted_by is None and previous is not None and previous.meta_user_id == str(info.user_id or ""):
        granted_by = previous.granted_by
    result = install_token(
        client=client, configuration=configuration, kind=kind, value=value, info=info,
        assets=[item for item in granted if item.meta_id not in theirs], granted_by=granted_by, actor=actor,
    )  # fmt: skip
    if result.created and kind == AccessToken.Kind.USER:
        from .page_tokens import derive_quietly

        derive_quietly(result.token, graph)  # after the commit, as onboarding does
    return ReconnectResult(
        result.token, client_id, configuration.pk, outcomes,
        replaced_token_id=result.superseded.pk if result.superseded else None, created=result.created,
    )  # fmt: skip


def _configuration(current: dict[int, AssetGrant], kind: str, existing, configuration_ids):
    """The login configuration the assets were connected through, of this token's type (newest first)."""
    if existing is not None and existing.configuration is not None:
        candidates = [existing.configuration]
    else:
        candidates = [grant.token.configuration for grant in sorted(
            current.values(), key=lambda grant: grant.token.created_at, reverse=True) if grant.token.configuration]
    wanted = CONFIGURATION_TYPES[kind]
    for configuration in candidates:
        if configuration.token_type == wanted and configuration.is_active and (
            configuration_ids is None or configuration.pk in configuration_ids
        ):
            return configuration
    return None
