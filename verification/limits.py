"""System users allowed per business at the provider's Marketing API access level."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from tokens.models import AccessToken

from .models import MarketingAccessLevel

SYSTEM_USER_KINDS = (AccessToken.Kind.SYSTEM_USER, AccessToken.Kind.GRANULAR_SYSTEM_USER)


@dataclass(frozen=True)
class SystemUserUsage:
    client_id: int
    client_name: str
    in_use: int
    allowed: int

    @property
    def headroom(self) -> int:
        """How many more system users this business may have (negative: already over)."""
        return self.allowed - self.in_use

    @property
    def warning(self) -> str:
        if self.headroom < 0:
            return f"{self.client_name} has {self.in_use} system users, over the {self.allowed} allowed."
        if self.headroom == 0:
            return f"{self.client_name} is at its limit of {self.allowed} system users: adding one will exceed it."
        return ""


def current_level() -> MarketingAccessLevel | None:
    return MarketingAccessLevel.objects.filter(is_current=True).first()


def system_users_allowed(level: MarketingAccessLevel | None = None) -> int:
    """System users plus the admin system user. Without a recorded level, assume the lowest (standard)."""
    level = level or current_level()
    return level.total_system_users if level else 2


def system_users_remaining(in_use: int, level: MarketingAccessLevel | None = None) -> int:
    return system_users_allowed(level) - in_use


def system_user_usage(level: MarketingAccessLevel | None = None, *, limit: int | None = None,
                      client_id: int | None = None) -> list[SystemUserUsage]:
    """Per client with system-user tokens: distinct live system users against the limit, fullest first.

    Counted and ordered in the database; ``limit`` keeps only the fullest clients, ``client_id`` one.
    """
    allowed = system_users_allowed(level)
    rows = (
        AccessToken.objects.filter(kind__in=SYSTEM_USER_KINDS, status__in=AccessToken.LIVE_STATUSES)
        .exclude(meta_user_id="")
        .values("client_id", "client__name")
        .annotate(in_use=Count("meta_user_id", distinct=True))
        .order_by("-in_use", "client__name")
    )
    if client_id is not None:
        rows = rows.filter(client_id=client_id)
    usage = [SystemUserUsage(r["client_id"], r["client__name"], r["in_use"], allowed) for r in rows[:limit]]
    return sorted(usage, key=lambda u: (u.headroom, u.client_name))


def system_user_warning(client_id: int) -> str:
    """A warning to show staff before they add a system user for this client ("" when there is room).

    For other apps through a dotted-path setting (tokens must not import verification).
    """
    for usage in system_user_usage(client_id=client_id):
        return usage.warning
    return ""
