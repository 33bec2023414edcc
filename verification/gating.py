"""Would Meta accept a token's calls? The gating decision and the tokens and clients at risk."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

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


def tokens_at_risk(when: str = "today", today: date | None = None) -> RiskReport:
    """Live tokens with at least one permission Meta would refuse, today or once the deadline has passed."""
    verified = provider_verified(when, today)
    role_ids = set(AppRole.objects.values_list("meta_user_id", flat=True))
    advanced = set(
        PermissionAccess.objects.filter(access_level=PermissionAccess.AccessLevel.ADVANCED).values_list(
            "permission", flat=True
        )
    )
    risks = []
    live = (
        AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES)
        .select_related("client", "granted_by")
        .defer("value")  # judging needs scopes and ids, never the secret (and not thousands of decryptions)
        .order_by("client__name", "id")
    )
    for token in live:
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
