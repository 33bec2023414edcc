"""Values the Graph client returns and takes, and the parsing of Meta's ids and times.

Plain data: no HTTP here (that is ``graph.client``), so anything may import these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from graph.errors import GraphError, classify_error


@dataclass(frozen=True)
class TokenGrant:
    access_token: str = field(repr=False)
    token_type: str | None
    expires_in: int | None  # seconds; None when Meta sent none (system-user tokens that never expire)


@dataclass(frozen=True)
class TokenInfo:
    """What ``debug_token`` says about a token. Times are aware UTC datetimes; None = never."""

    app_id: str | None
    type: str | None  # "USER" | "SYSTEM_USER" | "PAGE" | "APP"
    application: str | None
    is_valid: bool
    issued_at: datetime | None
    expires_at: datetime | None
    data_access_expires_at: datetime | None
    scopes: list[str]
    granular_scopes: list[dict[str, Any]]  # [{"scope": ..., "target_ids": [...]}]; no target_ids = everything
    user_id: str | None
    profile_id: str | None = None
    error: GraphError | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_response(cls, payload: Any, *, secrets: Iterable[str] = ()) -> TokenInfo:
        data = payload.get("data", payload) if isinstance(payload, dict) else {}
        if not isinstance(data, dict):
            data = {}
        error = None
        if isinstance(data.get("error"), dict):
            error = classify_error(data["error"], 200, secrets=secrets)
        granular = [g for g in data.get("granular_scopes") or [] if isinstance(g, dict)]
        return cls(
            app_id=str_or_none(data.get("app_id")),
            type=data.get("type"),
            application=data.get("application"),
            is_valid=bool(data.get("is_valid", False)),
            issued_at=_timestamp(data.get("issued_at")),
            expires_at=_timestamp(data.get("expires_at")),
            data_access_expires_at=_timestamp(data.get("data_access_expires_at")),
            scopes=[str(s) for s in data.get("scopes") or []],
            granular_scopes=[_granular_scope(g) for g in granular],
            user_id=str_or_none(data.get("user_id")),
            profile_id=str_or_none(data.get("profile_id")),
            error=error,
            metadata=data.get("metadata") if isinstance(data.get("metadata"), dict) else {},
        )

    def target_ids(self, scope: str) -> list[str] | None:
        """Asset ids a granular scope is limited to; None when it covers everything or is absent."""
        for entry in self.granular_scopes:
            if entry.get("scope") == scope:
                return entry.get("target_ids")
        return None


@dataclass(frozen=True)
class AssetRef:
    """One asset a token reaches.

    ``meta_id`` is the numeric id. Ad accounts are ``act_<n>`` in Graph paths; we keep
    the bare number (Meta's ``account_id``) so ids compare equal with ``granular_scopes``
    target ids. Use ``graph_id`` to address the asset in a call.
    """

    kind: str  # "page" | "ad_account" | "business" | "whatsapp_business_account" | "catalog"
    meta_id: str
    name: str
    business_id: str | None = None

    @property
    def graph_id(self) -> str:
        return graph_id(self.kind, self.meta_id)


@dataclass(frozen=True)
class PageToken:
    """A Page and the Page access token ``/me/accounts`` hands the token that asked."""

    page_id: str
    name: str
    access_token: str = field(repr=False)


@dataclass(frozen=True, repr=False)
class BatchItem:
    method: str
    relative_url: str  # may carry a secret in its query (debug_token's input_token): kept out of repr
    body: dict[str, Any] | str | None = None  # may carry an item's own access_token
    name: str | None = None

    def __repr__(self) -> str:
        return f"BatchItem({self.method!r}, {urlsplit(self.relative_url).path!r})"

    def as_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"method": self.method.upper(), "relative_url": self.relative_url}
        if self.body is not None:
            item["body"] = self.body if isinstance(self.body, str) else urlencode(self.body)
        if self.name:
            item["name"] = self.name
        return item


def graph_id(kind: str, meta_id: str) -> str:
    """The id to put in a Graph path: ad accounts are ``act_<n>``, everything else as is."""
    meta_id = str(meta_id)
    if kind == "ad_account" and not meta_id.startswith("act_"):
        return f"act_{meta_id}"
    return meta_id


def numeric_id(value: Any) -> str:
    value = str(value)
    return value[4:] if value.startswith("act_") else value


def _granular_scope(entry: dict[str, Any]) -> dict[str, Any]:
    scope: dict[str, Any] = {"scope": entry.get("scope")}
    if isinstance(entry.get("target_ids"), list):
        scope["target_ids"] = [str(t) for t in entry["target_ids"]]
    return scope


def str_or_none(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _timestamp(value: Any) -> datetime | None:
    """Unix seconds to an aware datetime; 0 and missing mean "never"."""
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds > 0 else None


def parse_graph_datetime(value: Any) -> datetime | None:
    """Meta's datetime fields: ``2026-12-23T18:46:31+0000``, ISO 8601, or unix seconds."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return _timestamp(value)
    if isinstance(value, str):
        for parse in (
            lambda v: datetime.strptime(v, "%Y-%m-%dT%H:%M:%S%z"),
            lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
        ):
            try:
                parsed = parse(value)
            except ValueError:
                continue
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
