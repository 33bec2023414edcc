"""Meta's rate limiting: which calls fall under business-use-case (BUC) rules, the codes a
throttled call gets, and the usage headers (developers.facebook.com/docs/graph-api/overview/rate-limiting).

- Platform rate limits (X-App-Usage) cover every call: 4 for app tokens, 17 for user tokens,
  32 for Page calls made with a *user* token.
- BUC rate limits cover Marketing API calls (ad accounts, pixels), Instagram, WhatsApp Business
  accounts, catalogs, and Page calls made with a *system-user or Page* token. Only those calls
  carry X-Business-Use-Case-Usage, keyed by the business of the token making the call, with one
  entry per use case the call touched.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime

from .core import GraphFault, usage_percent
from .models import SimAsset, SimBusiness, SimState, SimToken

# Meta's BUC error codes per use case; ads management throttling adds subcode 2446079.
USE_CASE_CODES: dict[str, tuple[int, int | None]] = {
    "ads_insights": (80000, None),
    "pages": (80001, None),
    "instagram": (80002, None),
    "custom_audience": (80003, None),
    "ads_management": (80004, 2446079),
    "leadgen": (80005, None),
    "messenger": (80006, None),
    "whatsapp_business_management": (80008, None),
    "catalog_management": (80009, None),
}
ADS_MANAGEMENT_SUBCODE = 2446079

RATE_LIMIT_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80000: "(#80000) There have been too many calls from this ad-account. Wait a bit and try again.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try again.",
    80002: "(#80002) There have been too many calls to this Instagram account. Wait a bit and try again.",
    80003: "(#80003) There have been too many calls for this custom audience. Wait a bit and try again.",
    80004: "(#80004) There have been too many calls to this ad-account. Wait a bit and try again.",
    80005: "(#80005) There have been too many leadgen api calls to this Page. Wait a bit and try again.",
    80006: "(#80006) There have been too many messenger api calls to this Page. Wait a bit and try again.",
    80008: "(#80008) There have been too many calls to this WhatsApp Business account. Wait a bit and try again.",
    80009: "(#80009) There have been too many calls to this Catalog account. Wait a bit and try again.",
}
# estimated_time_to_regain_access (minutes) of an injected rate-limit fault, unless set_faults'
# throttle_regain_minutes (SimState) says otherwise.
INJECTED_THROTTLE_MINUTES = 5


def use_case_for(kind: str, token: SimToken | None) -> str | None:
    """The BUC use case a call on an asset of this kind falls under, or None (platform limits)."""
    if token is None:
        return None
    if kind in (SimAsset.Kind.AD_ACCOUNT, SimAsset.Kind.PIXEL):
        return "ads_management"
    if kind == SimAsset.Kind.PAGE:
        return "pages" if token.type in (SimToken.Type.SYSTEM_USER, SimToken.Type.PAGE) else None
    return {
        SimAsset.Kind.INSTAGRAM_ACCOUNT: "instagram",
        SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT: "whatsapp_business_management",
        SimAsset.Kind.CATALOG: "catalog_management",
    }.get(kind)


def business_for(token: SimToken, asset: SimAsset) -> SimBusiness:
    """The business X-Business-Use-Case-Usage is keyed by: the token's (the client that installed
    the app), else the asset's owner."""
    return token.business if token.business is not None else asset.owner


def rate_limit_fault(code: int) -> GraphFault:
    return GraphFault(
        code,
        RATE_LIMIT_MESSAGES.get(code, f"(#{code}) Rate limit reached"),
        subcode=ADS_MANAGEMENT_SUBCODE if code == 80004 else None,
        is_transient=True,
        status=400,
    )


def throttled_minutes(business: SimBusiness, use_case: str, at: datetime) -> int:
    """Minutes until this business's throttle on this use case lifts (0 when not throttled)."""
    until = business.throttled_until
    if until is None or until <= at:
        return 0
    if business.throttled_use_cases and use_case not in business.throttled_use_cases:
        return 0
    return max(1, math.ceil((until - at).total_seconds() / 60))


@dataclass
class Touched:
    """The BUC use cases one call touched, per business (in the order first touched)."""

    businesses: dict[str, SimBusiness] = field(default_factory=dict)
    use_cases: dict[str, list[str]] = field(default_factory=dict)

    def add(self, business: SimBusiness, use_case: str) -> None:
        self.businesses.setdefault(business.business_id, business)
        cases = self.use_cases.setdefault(business.business_id, [])
        if use_case not in cases:
            cases.append(use_case)

    def touch(self, asset: SimAsset, token: SimToken | None) -> None:
        use_case = use_case_for(asset.kind, token)
        if use_case is None:
            return
        self.add(business_for(token, asset), use_case)

    def throttled(self, at: datetime) -> tuple[SimBusiness, str, int] | None:
        """The first (business, use case, minutes left) this call touched that is throttled."""
        for business_id, cases in self.use_cases.items():
            business = self.businesses[business_id]
            for use_case in cases:
                minutes = throttled_minutes(business, use_case, at)
                if minutes:
                    return business, use_case, minutes
        return None


def throttled_fault(use_case: str) -> GraphFault:
    return rate_limit_fault(USE_CASE_CODES[use_case][0])


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def usage_headers(
    current: SimState,
    touched: Touched,
    at: datetime,
    *,
    ad_account_id: str | None = None,
    injected_throttle: bool = False,
) -> dict[str, str]:
    """X-App-Usage always; X-Business-Use-Case-Usage only for BUC calls; X-Ad-Account-Usage on ad accounts."""
    app_percent = 100 if injected_throttle else usage_percent(current)
    headers = {
        "X-App-Usage": _compact(
            {"call_count": app_percent, "total_cputime": app_percent // 2, "total_time": app_percent // 2}
        )
    }
    if touched.use_cases:
        body: dict[str, list[dict]] = {}
        for business_id, cases in touched.use_cases.items():
            business = touched.businesses[business_id]
            entries = []
            for use_case in cases:
                minutes = throttled_minutes(business, use_case, at)
                if injected_throttle:
                    minutes = max(minutes, current.throttle_regain_minutes)
                percent = 100 if minutes else max(usage_percent(current), business.usage_floor_percent)
                entries.append(
                    {
                        "type": use_case,
                        "call_count": percent,
                        "total_cputime": percent // 2,
                        "total_time": percent // 2,
                        "estimated_time_to_regain_access": minutes,
                        "ads_api_access_tier": "standard_access",
                    }
                )
            body[business_id] = entries
        headers["X-Business-Use-Case-Usage"] = _compact(body)
    if ad_account_id:
        minutes = max(
            [throttled_minutes(touched.businesses[b], "ads_management", at) for b in touched.use_cases]
            + [current.throttle_regain_minutes if injected_throttle else 0]
        )
        percent = 100 if minutes else usage_percent(current)
        headers["X-Ad-Account-Usage"] = _compact(
            {"acc_id_util_pct": percent, "reset_time_duration": minutes * 60, "ads_api_access_tier": "standard_access"}
        )
    return headers
