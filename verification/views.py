"""The staff risk dashboard and the at-risk lists, inside the admin (staff only, see verification/urls.py)."""

from __future__ import annotations

from django.contrib import admin
from django.http import Http404
from django.template.response import TemplateResponse
from django.utils import timezone

from . import gating, limits
from .models import BusinessVerification, TechProviderVerification
from .upkeep import active_rule, upkeep_figures

# The fullest clients first; at a hundred thousand clients the whole table would be the page.
DASHBOARD_SYSTEM_USER_ROWS = 50
AT_RISK_ROWS = 500  # tokens listed (with their reasons); the counts above the list are of all of them
WHEN_LABELS = {"today": "At risk today", "after_deadline": "At risk once the verification deadline passes"}


def dashboard(request):
    today = timezone.localdate()
    records = list(TechProviderVerification.objects.all())
    provider = next((record for record in records if record.is_provider), None)
    rule = active_rule()
    usage = limits.system_user_usage(limit=DASHBOARD_SYSTEM_USER_ROWS)
    days_left = provider.days_until_deadline(today) if provider else None
    risk = gating.risk_counts_by_when(today)
    context = {
        **admin.site.each_context(request),
        "title": "Risk dashboard",
        "today": today,
        "provider": provider,
        "records": [(record, record.days_until_deadline(today)) for record in records],
        "business_verifications": list(BusinessVerification.objects.order_by("name")),
        "provider_days_left": days_left,
        "provider_days_overdue": -days_left if days_left is not None and days_left < 0 else None,
        "risk_today": risk["today"],
        "risk_after_deadline": risk["after_deadline"],
        "rule": rule,
        "figures": upkeep_figures(rule) if rule else None,
        "level": limits.current_level(),
        "system_users_allowed": limits.system_users_allowed(),
        "usage": usage,
        "usage_warnings": [u for u in usage if u.warning],
    }
    return TemplateResponse(request, "admin/verification/dashboard.html", context)


def at_risk(request, when: str):
    if when not in WHEN_LABELS:
        raise Http404("Unknown list")
    report = gating.tokens_at_risk(when, limit=AT_RISK_ROWS)
    context = {
        **admin.site.each_context(request),
        "title": WHEN_LABELS[when],
        "when": when,
        "report": report,
        "counts": gating.risk_counts(when),
        "provider": gating.provider_record(),
    }
    return TemplateResponse(request, "admin/verification/at_risk.html", context)
