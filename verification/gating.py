"""Would Meta accept a token's calls? The gating decision and the tokens and clients at risk."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date

from django.db import connection
from django.db.models import BooleanField, Count, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from graph.permissions import TECH_PROVIDER_GATED
from tokens.models import AccessToken

from .models import AppRole, PermissionAccess, TechProviderVerification


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reason: str


# The decision table, read top to bottom; the first row whose conditions hold decides.
# Columns: has_role, gated, provider_verified, advanced_access (None = any value).
DECISION_TABLE: tuple[tuple[bool | None, bool | None, bool | None, bool | None, Decision], ...] = (
    (True, None, None, None, Decision(True, "The person who granted it has a role on the app.")),
    (False, None, None, False, Decision(False, "The app has no advanced access for this permission.")),
    (False, False, None, True, Decision(True, "Not gated by Tech Provider verification; advanced access.")),
    (False, True, False, True, Decision(False, "Gated: the provider is not a verified Tech Provider.")),
    (False, True, True, True, Decision(True, "Verified Tech Provider with advanced access.")),
)


def gating_decision(*, has_role: bool, gated: bool, provider_verified: bool, advanced_access: bool) -> Decision:
    facts = (has_role, gated, provider_verified, advanced_access)
    for *conditions, decision in DECISION_TABLE:
        if all(expected is None or expected == actual for expected, actual in zip(conditions, facts, strict=True)):
            return decision
    raise AssertionError(f"The decision table does not cover {facts}")  # pragma: no cover


@dataclass
class TokenRisk:
    token: AccessToken
    refused: dict[str, str] = field(default_factory=dict)  # permission -> reason


@dataclass
class RiskReport:
    when: str  # "today" or "after_deadline"
    tokens: list[TokenRisk]

    @property
    def client_ids(self) -> set[int]:
        return {risk.token.client_id for risk in self.tokens}

    @property
    def clients(self) -> list:
        """The clients at risk, each once, in name order."""
        seen = {}
        for risk in self.tokens:
            seen.setdefault(risk.token.client_id, risk.token.client)
        return sorted(seen.values(), key=lambda client: client.name)

    @property
    def token_count(self) -> int:
        return len(self.tokens)

    @property
    def client_count(self) -> int:
        return len(self.client_ids)


def provider_record() -> TechProviderVerification | None:
    return TechProviderVerification.objects.filter(is_provider=True).first()


def provider_verified(when: str = "today", today: date | None = None) -> bool:
    """The provider's standing as the gating sees it. No record yet: Meta has not asked for verification."""
    record = provider_record()
    if record is None:
        return True
    if when == "after_deadline":
        return record.passes_gating_after_deadline()
    return record.passes_gating(today or timezone.localdate())


@dataclass(frozen=True)
class RiskCounts:
    when: str
    token_count: int
    client_count: int


def scopes_match(names: list[str], *, outside: bool) -> RawSQL:
    """True when a token's scopes hold a permission in ``names`` (``outside``: one not in ``names``).

    Scopes are a JSON array; the test runs in the database on each row, so judging many tokens
    costs one scan, not a Python loop.
    """
    # Only the model's table name and placeholders are formatted in; the names travel as parameters.
    table = AccessToken._meta.db_table
    if connection.vendor == "postgresql":
        if outside:
            return RawSQL(f'NOT ("{table}"."scopes" <@ %s::jsonb)', [json.dumps(names)],  # noqa: S611
                          output_field=BooleanField())
        return RawSQL(f'"{table}"."scopes" ?| %s', [names], output_field=BooleanField())  # noqa: S611
    placeholders = ", ".join(["%s"] * len(names)) or "NULL"
    test = "IS NULL OR value NOT IN" if outside else "IN"
    condition = f"value {test} ({placeholders})" if names else ("1 = 1" if outside else "1 = 0")
    sql = f'EXISTS (SELECT 1 FROM json_each("{table}"."scopes") WHERE {condition})'  # noqa: S608
    return RawSQL(sql, list(names), output_field=BooleanField())  # noqa: S611


def _risk_condition(when: str, today: date | None) -> Q:
    """DECISION_TABLE as a condition on a live token: some permission refused, no role to save it.

    Refused: the person who granted it has no role on the app and either the app lacks advanced
    access for the permission, or it is gated and the provider is not verified (then).
    """
    verified = provider_verified(when, today)
    role_ids = list(AppRole.objects.values_list("meta_user_id", flat=True))
    advanced = sorted(PermissionAccess.objects.filter(access_level=PermissionAccess.AccessLevel.ADVANCED)
                      .values_list("permission", flat=True))
    refused = Q(scopes_match(advanced, outside=True))
    if not verified:
        refused |= Q(scopes_match(sorted(TECH_PROVIDER_GATED), outside=False))
    if role_ids:
        refused &= ~Q(meta_user_id__in=role_ids) & ~Q(granted_by__meta_user_id__in=role_ids)
    return refused


def gated_refusal_condition() -> Q:
    """A live token holding a gated permission, granted by someone without a role on the app: what
    Meta refuses once the provider's verification deadline passes unverified (tokens.health)."""
    role_ids = list(AppRole.objects.values_list("meta_user_id", flat=True))
    gated = Q(scopes_match(sorted(TECH_PROVIDER_GATED), outside=False))
    if role_ids:
        gated &= ~Q(meta_user_id__in=role_ids) & ~Q(granted_by__meta_user_id__in=role_ids)
    return gated


def at_risk_tokens(when: str = "today", today: date | None = None) -> QuerySet:
    """Live tokens with at least one permission Meta would refuse, as one query."""
    return AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES).filter(_risk_condition(when, today))


def risk_counts(when: str = "today", today: date | None = None) -> RiskCounts:
    """How many live tokens, and of how many clients, Meta would refuse: one aggregate."""
    return risk_counts_by_when(today, whens=(when,))[when]


def risk_counts_by_when(today: date | None = None, whens=("today", "after_deadline")) -> dict[str, RiskCounts]:
    """Several moments' counts in one scan of the live tokens (a filtered count each)."""
    aggregates = {}
    for when in whens:
        risky = _risk_condition(when, today)
        aggregates[f"{when}_tokens"] = Count("pk", filter=risky)
        aggregates[f"{when}_clients"] = Count("client", distinct=True, filter=risky)
    counts = AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES).aggregate(**aggregates)
    return {when: RiskCounts(when, counts[f"{when}_tokens"], counts[f"{when}_clients"]) for when in whens}


def tokens_at_risk(when: str = "today", today: date | None = None, *, limit: int | None = None) -> RiskReport:
    """The tokens at risk with the reason per refused permission (only those tokens are read)."""
    verified = provider_verified(when, today)
    role_ids = set(AppRole.objects.values_list("meta_user_id", flat=True))
    advanced = set(
        PermissionAccess.objects.filter(access_level=PermissionAccess.AccessLevel.ADVANCED).values_list(
            "permission", flat=True
        )
    )
    risks = []
    live = (
        at_risk_tokens(when, today)
        .select_related("client", "granted_by")
        .defer("value")  # judging needs scopes and ids, never the secret (and not thousands of decryptions)
        .order_by("client__name", "id")
    )
    for token in live[:limit] if limit else live:
        person_ids = {token.meta_user_id, getattr(token.granted_by, "meta_user_id", "")} - {""}
        has_role = bool(person_ids & role_ids)
        refused = {}
        for permission in token.scopes or []:
            decision = gating_decision(
                has_role=has_role,
                gated=permission in TECH_PROVIDER_GATED,
                provider_verified=verified,
                advanced_access=permission in advanced,
            )
            if not decision.accepted:
                refused[permission] = decision.reason
        if refused:
            risks.append(TokenRisk(token=token, refused=refused))
    return RiskReport(when=when, tokens=risks)
