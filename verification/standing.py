"""What the provider's standing with Meta does to each client's connection (tokens.health, D26).

Registered with ``tokens.health.register_standing_causes`` in ``VerificationConfig.ready()``:
tokens cannot import verification, so this hands it, per recompute, the causes that break
connections from outside the client's tokens:

- the Tech Provider verification deadline, while the provider is not verified: from the day
  after the deadline Meta refuses gated permissions to people without a role on the app, so the
  live tokens holding one (granted by such a person) break then;
- the Marketing API upkeep rule at risk: Meta may withdraw advanced access, which the live tokens
  holding a Marketing API permission need; at risk now (the rule is not met) breaks today, at
  risk by projection breaks at the end of the projection.

Each cause's moment and words change at most once a day, so the periodic recompute can tell
when they changed (a new deadline, verification passed, upkeep back on track).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.db.models import Q

from tokens.health import UPKEEP_AT_RISK, VERIFICATION_DEADLINE, StandingCause

from . import gating
from .upkeep import active_rule, upkeep_figures

MARKETING_PERMISSIONS = ("ads_management", "ads_read")


def _start_of(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def verification_deadline_cause() -> StandingCause | None:
    record = gating.provider_record()
    if record is None or not record.deadline_is_running() or record.passes_gating_after_deadline():
        return None
    return StandingCause(
        VERIFICATION_DEADLINE,
        _start_of(record.deadline + timedelta(days=1)),
        f"Tech Provider verification deadline {record.deadline:%Y-%m-%d}: unless the provider is verified, Meta "
        "then refuses the gated permissions this client granted.",
        gating.gated_refusal_condition(),
    )


def upkeep_cause(now: datetime) -> StandingCause | None:
    rule = active_rule()
    if rule is None:
        return None
    figures = upkeep_figures(rule, now)
    if not figures.at_risk:
        return None
    today = now.astimezone(UTC).date()
    failing_now = not (figures.calls_ok and figures.errors_ok)
    at = _start_of(today if failing_now else today + timedelta(days=figures.projection_days))
    when = "is not met now" if failing_now else f"will not be met in {figures.projection_days} days at this rate"
    return StandingCause(
        UPKEEP_AT_RISK,
        at,
        f"Marketing API upkeep {when} (rule: {rule.name}): Meta may withdraw the advanced access this "
        "client's ads permissions need.",
        Q(gating.scopes_match(list(MARKETING_PERMISSIONS), outside=False)),
    )


def standing_causes(now: datetime) -> list[StandingCause]:
    return [cause for cause in (verification_deadline_cause(), upkeep_cause(now)) if cause is not None]
