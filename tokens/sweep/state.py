"""What a chunk carries while it runs: its counts, each token's check, the grants it read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from graph.errors import GraphError

from ..install import GrantedAsset
from ..models import AccessToken, TokenEvent


@dataclass
class ChunkResult:
    checked: int = 0  # Meta said valid (active or expiring); the invalid ones are counted apart
    skipped: int = 0  # handled in this run by another delivery, held by another chunk's lease, or not live
    active: int = 0
    expiring: int = 0
    invalid: int = 0
    errors: int = 0  # asked, without a usable answer: checked again soon, never marked invalid
    deferred: int = 0  # not asked: a rate limit, usage near the budget, Meta unreachable, out of time
    handled: int = 0  # tokens whose outcome this chunk wrote (its lease held to the end)
    lost: int = 0  # tokens claimed whose lease another chunk took over before the write (nothing written)
    business_throttled: int = 0  # of those, because Meta throttled the token's business (the others went on)
    permissions_removed: int = 0  # tokens on which a person removed a permission (seen now)
    assets_added: int = 0
    assets_removed: int = 0
    requests_paused: float = 0.0
    finished_run: bool = False
    events: list[TokenEvent] = field(default_factory=list, repr=False)

    def totals(self) -> dict[str, int]:
        return {
            "handled": self.handled,
            "checked": self.checked,
            "active": self.active,
            "expiring": self.expiring,
            "invalid": self.invalid,
            "errors": self.errors,
            "deferred": self.deferred,
            "business_throttled": self.business_throttled,
            "permissions_removed": self.permissions_removed,
            "assets_added": self.assets_added,
            "assets_removed": self.assets_removed,
        }


@dataclass
class Answers:
    """What a chunk learnt from Meta before writing: each token's check, what it covers, and the
    tokens whose business Meta throttled on the coverage read."""

    checks: dict[int, TokenCheck] = field(default_factory=dict)
    coverage: dict[int, Coverage] = field(default_factory=dict)
    throttled: dict[int, GraphError] = field(default_factory=dict)


@dataclass
class TokenCheck:
    """One token in one chunk: what the check decided and which of its fields to write."""

    token: AccessToken
    fields: set[str] = field(default_factory=set)  # the token's fields that changed
    refreshed: bool = False  # debug_token said valid: scheduled from its ends, not by a failure or deferral
    outcome: str = ""  # "checked", "invalid", "failed" or "deferred" (decisions.py sets it)
    new_grants: list[tuple[GrantedAsset, datetime | None]] = field(default_factory=list)


@dataclass(slots=True)
class GrantRow:
    """The columns of an AssetGrant (and its asset) the sweep reads and writes, without a model instance.

    Thousands of grants per chunk: model instances (and their assets) cost more CPU than the
    rest of the check. The attribute names are the model's, so ``bulk_set`` writes them.
    """

    pk: int
    token_id: int
    status: str
    user_access_expire_time: datetime | None
    scopes: list
    removed_at: datetime | None
    last_checked_at: datetime | None
    kind: str
    meta_id: str
    changed: bool = False


@dataclass
class Coverage:
    """What one token reaches now, as read from Meta."""

    refs: list[GrantedAsset] = field(default_factory=list)
    expiry: dict[str, datetime | None] = field(default_factory=dict)  # meta_id -> user_access_expire_time
    kinds_read: set[str] = field(default_factory=set)  # edges read completely: their absence means removed
    permission_removed: set[str] = field(default_factory=set)  # kinds the person removed the permission for
