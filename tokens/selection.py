"""The one token that works for an asset now (docs/decisions.md D43), for the API's token endpoint and proxy.

``working_token(meta_id, ...)`` answers a ``Selection`` (the token, its value, what it can do and
when it stops working) or raises:

- ``AssetUnknown``: no asset with that Meta id in the clients the caller may see (the API's 404:
  another client's asset gets the same answer as one that does not exist);
- ``NoWorkingToken(code, message, token)``: the asset is known but nothing works; ``code`` is one of
  ``NEEDS_REAUTHORIZATION``, ``ASSET_NOT_GRANTED``, ``SCOPE_MISSING``, ``CLIENT_OFFBOARDED``, and
  ``token`` the one a reconnect link should be made for (None for an offboarded client).

Choice among the grants on the asset whose token is live, not expired, whose data access has not
ended, whose grant is active (or access ending) and not past ``user_access_expire_time``, of a client
not offboarded, with every requested scope: system-user tokens first (a granular one whose purpose
matches ``purpose`` before the plain system-user token, other granular tokens after it), then Page
tokens (made for exactly that Page), then user tokens; among equals, the one that works longest,
then the newest.

One query whatever the number of grants: the candidates (grants with their tokens, clients, parents
and assets, the values still encrypted), as SQL written once per process (D90); only the chosen
value is decrypted. Tokens never imports onboarding: the client's status
is read through the foreign key, by value.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from common import rows

from .models import AccessToken, Asset, AssetGrant

NEEDS_REAUTHORIZATION = "needs_reauthorization"
ASSET_NOT_GRANTED = "asset_not_granted"
SCOPE_MISSING = "scope_missing"
CLIENT_OFFBOARDED = "client_offboarded"

OFFBOARDED = "offboarded"  # onboarding.ClientBusiness.Status.OFFBOARDED, by value (no import of onboarding)
WORKING_GRANTS = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING)
SYSTEM_USER_KINDS = (AccessToken.Kind.SYSTEM_USER, AccessToken.Kind.GRANULAR_SYSTEM_USER)
# What the choice reads of each candidate, by model (no JSON it does not need: fewer columns to turn
# into objects on every request). The token's value comes too, still encrypted.
CANDIDATE_COLUMNS = (
    rows.Columns("grant", AssetGrant, ("id", "status", "user_access_expire_time", "token_id", "asset_id")),
    rows.Columns("asset", Asset, ("id", "meta_id", "kind", "client_id")),
    rows.Columns("token", AccessToken, ("id", "client_id", "configuration_id", "kind", "status", "scopes",
                                        "missing_permissions", "expires_at", "data_access_expires_at", "parent_id",
                                        "purpose", "created_at")),
    rows.Columns("client", AccessToken.client.field.related_model, ("id", "status", "meta_business_id")),
    rows.Columns("parent", AccessToken, ("id", "status", "expires_at", "data_access_expires_at", "configuration_id",
                                         "kind", "parent_id", "created_at")),
    rows.Columns("token", AccessToken, ("value",), field_converters=False),  # decrypted once chosen
)
MAX_CANDIDATES = 500  # the newest grants on one asset; years of reconnecting stay far below this
META_ID_PATTERN = r"^(act_)?[0-9]{1,30}$"  # Meta ids are decimal digits; an ad account's path has act_

MESSAGES = {
    NEEDS_REAUTHORIZATION: "No token for this asset works any more (expired, invalid, revoked, or the person's access "
                           "ended): someone at the client must connect again with the reconnect link.",
    ASSET_NOT_GRANTED: "The client's connection does not include this asset now (it was removed from the access or "
                       "not selected when reconnecting): reconnect and select it.",
    SCOPE_MISSING: "A token works for this asset but lacks the requested permission(s) {missing}: reconnect with a "
                   "configuration that asks for them.",
    CLIENT_OFFBOARDED: "This client is offboarded: the portal hands out no token for its assets.",
}
# The closer a failed candidate came to working, the more its reason says (the first reason wins).
REASON_ORDER = (SCOPE_MISSING, ASSET_NOT_GRANTED, NEEDS_REAUTHORIZATION)


class AssetUnknown(Exception):
    """No asset with this Meta id among the clients the caller may see."""


class NoWorkingToken(Exception):
    def __init__(self, code: str, message: str, *, token: AccessToken | None, client_id: int | None,
                 missing_scopes: Sequence[str] = ()):
        super().__init__(code)
        self.code, self.message, self.token, self.client_id = code, message, token, client_id
        self.missing_scopes = list(missing_scopes)


@dataclass(frozen=True)
class Selection:
    token: AccessToken  # its value is loaded; everything else of it is as selected
    grant: AssetGrant
    asset: Asset
    value: str
    scopes: list[str]  # what it may do now (granted minus what the person removed)
    expires_at: datetime | None
    access_ends_at: datetime | None  # earliest of expiry, data-access expiry and the asset's user_access_expire_time

    @property
    def kind(self) -> str:
        return self.token.kind

    @property
    def client_id(self) -> int:
        return self.token.client_id

    def ends_within_reminder_window(self, now: datetime | None = None) -> bool:
        if self.access_ends_at is None:
            return False
        window = timedelta(days=max(int(days) for days in settings.REMINDER_STAGES_DAYS))
        return self.access_ends_at - (now or timezone.now()) <= window


def bare_meta_id(meta_id: str) -> str:
    """Assets are stored by their number: an ad account's ``act_<n>`` is ``<n>``."""
    return meta_id.removeprefix("act_")


def effective_scopes(token: AccessToken) -> list[str]:
    removed = set(token.missing_permissions or ())
    return [scope for scope in token.scopes or () if scope not in removed]


def access_ends_at(token: AccessToken, grant: AssetGrant) -> datetime | None:
    ends = [moment for moment in (token.ends_at(), grant.user_access_expire_time) if moment]
    return min(ends) if ends else None


def _configuration_id(token: AccessToken) -> int | None:
    if token.configuration_id is None and token.parent_id is not None:
        return token.parent.configuration_id
    return token.configuration_id


def _rank(token: AccessToken, purpose: str | None) -> int:
    if token.kind == AccessToken.Kind.GRANULAR_SYSTEM_USER and purpose and token.purpose == purpose:
        return 0
    return {AccessToken.Kind.SYSTEM_USER: 1, AccessToken.Kind.GRANULAR_SYSTEM_USER: 2,
            AccessToken.Kind.PAGE: 3, AccessToken.Kind.USER: 4}.get(token.kind, 5)


def _why_not(grant: AssetGrant, requested: set[str], now: datetime) -> str | None:
    """None when this grant's token works now with every requested scope, else the reason it does not."""
    token = grant.token
    if token.client.status == OFFBOARDED:
        return CLIENT_OFFBOARDED
    if token.status == AccessToken.Status.SUPERSEDED:
        return ASSET_NOT_GRANTED  # reconnected since, and the new token does not cover this asset
    ends = token.ends_at()
    if not token.is_live() or (ends is not None and ends <= now):
        return NEEDS_REAUTHORIZATION
    if grant.status == AssetGrant.Status.REMOVED:
        return ASSET_NOT_GRANTED
    if grant.status not in WORKING_GRANTS:  # ended, revoked, permission removed
        return NEEDS_REAUTHORIZATION
    if grant.user_access_expire_time is not None and grant.user_access_expire_time <= now:
        return NEEDS_REAUTHORIZATION
    if requested - set(effective_scopes(token)):
        return SCOPE_MISSING
    return None


def working_token(
    meta_id: str,
    *,
    purpose: str | None = None,
    scopes: Collection[str] = (),
    client_ids: Collection[int] | None = None,
    configuration_ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> Selection:
    """The token that works for the asset with Meta id ``meta_id`` now (see the module's docstring).

    ``client_ids`` / ``configuration_ids``: only tokens of these clients / login configurations
    (None: any). ``scopes``: permissions the token must have been granted (and not lost since).
    """
    now = now or timezone.now()
    requested = {str(scope) for scope in scopes}
    grants, ciphertexts = _candidates(str(meta_id), None if client_ids is None else list(client_ids))
    if configuration_ids is not None:
        allowed = set(configuration_ids)
        visible = [grant for grant in grants if _configuration_id(grant.token) in allowed]
    else:
        visible = grants
    if not grants:
        raise AssetUnknown(meta_id)
    if not visible:
        # Its client is one the caller may see, but no token of its configurations ever covered it.
        grant = grants[0]
        raise NoWorkingToken(ASSET_NOT_GRANTED, MESSAGES[ASSET_NOT_GRANTED], token=None,
                             client_id=grant.token.client_id)

    working, failures = [], []
    for grant in visible:
        reason = _why_not(grant, requested, now)
        (working if reason is None else failures).append((reason, grant))
    if working:
        def preference(item):
            grant = item[1]
            ends = access_ends_at(grant.token, grant)
            return (_rank(grant.token, purpose), -(ends.timestamp() if ends else float("inf")),
                    -grant.token.created_at.timestamp(), -grant.token.pk)

        grant = min(working, key=preference)[1]
        token = grant.token
        token.value = _decrypt(ciphertexts[grant.pk])
        return Selection(token=token, grant=grant, asset=grant.asset, value=token.value,
                         scopes=effective_scopes(token), expires_at=token.expires_at,
                         access_ends_at=access_ends_at(token, grant))

    if all(reason == CLIENT_OFFBOARDED for reason, _ in failures):
        grant = failures[0][1]
        raise NoWorkingToken(CLIENT_OFFBOARDED, MESSAGES[CLIENT_OFFBOARDED], token=None,
                             client_id=grant.token.client_id)
    failures = [(reason, grant) for reason, grant in failures if reason != CLIENT_OFFBOARDED]
    reason, grant = min(failures, key=lambda item: (REASON_ORDER.index(item[0]), -item[1].token.created_at.timestamp()))
    token = _reconnect_subject(grant.token)
    missing = sorted(requested - set(effective_scopes(grant.token))) if reason == SCOPE_MISSING else []
    message = MESSAGES[reason].format(missing=", ".join(missing))
    raise NoWorkingToken(reason, message, token=token, client_id=grant.token.client_id, missing_scopes=missing)


def _candidate_sql(connection, client_count: int | None) -> str:
    """The candidates' SQL with ``client_count`` placeholders for the clients (None: no limit), written
    once per vendor and count rather than compiled by the ORM on every request (D90)."""
    key = (connection.vendor, client_count)
    if key not in _CANDIDATE_SQL:
        quote = connection.ops.quote_name
        grant, asset, token, client, parent = (quote(group.alias) for group in CANDIDATE_COLUMNS[:5])
        tables = {group.alias: quote(group.model._meta.db_table) for group in CANDIDATE_COLUMNS}
        clients = "" if client_count is None else f" AND {token}.client_id IN ({', '.join(['%s'] * client_count)})"
        # Names from the models and counts of placeholders only: every value is a parameter.
        _CANDIDATE_SQL[key] = (
            f"SELECT {rows.select_list(CANDIDATE_COLUMNS, connection)} FROM {tables['grant']} {grant}"  # noqa: S608
            f" INNER JOIN {tables['asset']} {asset} ON {asset}.id = {grant}.asset_id"
            f" INNER JOIN {tables['token']} {token} ON {token}.id = {grant}.token_id"
            f" INNER JOIN {tables['client']} {client} ON {client}.id = {token}.client_id"
            f" LEFT OUTER JOIN {tables['token']} {parent} ON {parent}.id = {token}.parent_id"
            f" WHERE {asset}.meta_id = %s{clients} ORDER BY {grant}.id DESC LIMIT {MAX_CANDIDATES}"
        )
    return _CANDIDATE_SQL[key]


_CANDIDATE_SQL: dict[tuple[str, int | None], str] = {}


def _candidates(meta_id: str, client_ids: list[int] | None) -> tuple[list[AssetGrant], dict[int, object]]:
    """The newest grants on the asset (of these clients), each with its token, the token's client and
    parent, and the asset; and each grant's token value as stored (encrypted), by grant id."""
    if client_ids == []:
        return [], {}
    if client_ids:
        # Padded to a power of two with the last id (the same set): few statements kept, whatever the limits.
        client_ids = client_ids + client_ids[-1:] * ((1 << (len(client_ids) - 1).bit_length()) - len(client_ids))
    with rows.planned_once(connection) as cursor:
        cursor.execute(_candidate_sql(connection, None if client_ids is None else len(client_ids)),
                       [meta_id, *(client_ids or ())])
        found = cursor.fetchall()
    grants, ciphertexts, known = [], {}, {}
    for row in found:
        grant, asset, token, client, parent, (ciphertext,) = rows.split(row, CANDIDATE_COLUMNS, connection, known=known)
        token.client = client
        if parent is not None:
            token.parent = parent
        grant.token, grant.asset = token, asset
        grants.append(grant)
        ciphertexts[grant.pk] = ciphertext
    return grants, ciphertexts


def _decrypt(ciphertext) -> str:
    return AccessToken._meta.get_field("value").from_db_value(ciphertext, None, connection)


def _reconnect_subject(token: AccessToken) -> AccessToken:
    """The token a reconnect link is made for: a granular or Page token's parent (it has the configuration)."""
    return token.parent if token.parent_id is not None and token.configuration_id is None else token
