"""Meta's rate-limit headers, kept so callers can slow down before Meta refuses.

Values are percentages of the budget (throttling can start at 100):
``X-App-Usage {call_count, total_time, total_cputime}``,
``X-Ad-Account-Usage {acc_id_util_pct, reset_time_duration, ads_api_access_tier}``,
``X-Business-Use-Case-Usage {"<business id>": [{type, call_count, total_cputime, total_time,
estimated_time_to_regain_access (minutes), ads_api_access_tier}]}``.
(developers.facebook.com/docs/graph-api/overview/rate-limiting)
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

APP_USAGE_HEADER = "X-App-Usage"
BUSINESS_USAGE_HEADER = "X-Business-Use-Case-Usage"
AD_ACCOUNT_USAGE_HEADER = "X-Ad-Account-Usage"

_APP_KEYS = ("call_count", "total_time", "total_cputime")
_BUSINESS_KEYS = ("call_count", "total_time", "total_cputime")
_AD_ACCOUNT_KEYS = ("acc_id_util_pct",)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _json_header(headers: Mapping[str, str], name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None


@dataclass
class Usage:
    """The latest usage Meta reported, per header."""

    app: dict[str, Any] = field(default_factory=dict)
    business: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ad_account: dict[str, Any] = field(default_factory=dict)

    def max_percent(self) -> float:
        """The highest percentage of any budget Meta reported (0 when it reported nothing)."""
        values = [_number(self.app.get(key)) for key in _APP_KEYS]
        values += [_number(self.ad_account.get(key)) for key in _AD_ACCOUNT_KEYS]
        for entries in self.business.values():
            for entry in entries:
                values += [_number(entry.get(key)) for key in _BUSINESS_KEYS]
        return max(values, default=0.0)

    def app_percent(self) -> float:
        """The app's share of its platform budget (X-App-Usage): the limit every call shares."""
        return max((_number(self.app.get(key)) for key in _APP_KEYS), default=0.0)

    def business_regain_seconds(self, business_id: str) -> float:
        """How long Meta said this business's calls must wait (0 when it said nothing)."""
        entries = self.business.get(str(business_id), [])
        return max((_number(e.get("estimated_time_to_regain_access")) for e in entries), default=0.0) * 60.0

    def regain_access_seconds(self) -> float:
        """How long Meta said to wait (``estimated_time_to_regain_access`` is in minutes)."""
        minutes = [
            _number(entry.get("estimated_time_to_regain_access"))
            for entries in self.business.values()
            for entry in entries
        ]
        return max(minutes, default=0.0) * 60.0

    def business_percent(self, business_id: str) -> float:
        return max(
            (_number(entry.get(key)) for entry in self.business.get(str(business_id), []) for key in _BUSINESS_KEYS),
            default=0.0,
        )


def usage_of(answers_headers: Iterable[Mapping[str, str]]) -> Usage:
    """The usage these answers' headers report, later answers over earlier ones: a ``Usage`` of its own,
    for the caller alone (no tracker, no lock, no copy)."""
    usage = Usage()
    for headers in answers_headers:
        _apply(usage, _parsed(headers))
    return usage


def _parsed(headers: Mapping[str, str]) -> tuple[Any, Any, Any]:
    return (_json_header(headers, APP_USAGE_HEADER), _json_header(headers, BUSINESS_USAGE_HEADER),
            _json_header(headers, AD_ACCOUNT_USAGE_HEADER))


def _apply(usage: Usage, parsed: tuple[Any, Any, Any]) -> None:
    app, business, ad_account = parsed
    if isinstance(app, dict):
        usage.app = app
    if isinstance(business, dict):
        for business_id, entries in business.items():
            if isinstance(entries, list):
                usage.business[str(business_id)] = [e for e in entries if isinstance(e, dict)]
    if isinstance(ad_account, dict):
        usage.ad_account = ad_account


def regain_access_seconds_from(headers: Mapping[str, str]) -> float | None:
    """``estimated_time_to_regain_access`` (or Retry-After) of one response, in seconds."""
    seconds = usage_of([headers]).regain_access_seconds()
    retry_after = _number(headers.get("Retry-After"))
    seconds = max(seconds, retry_after)
    return seconds or None


class UsageTracker:
    """Thread-safe holder of the latest usage (one client may serve several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage = Usage()

    def update(self, headers: Mapping[str, str]) -> None:
        parsed = _parsed(headers)  # outside the lock
        with self._lock:
            _apply(self._usage, parsed)

    def snapshot(self) -> Usage:
        with self._lock:
            return copy.deepcopy(self._usage)
