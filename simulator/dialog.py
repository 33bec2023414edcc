"""Facebook Login for Business's dialog: validate the request, let a seeded person choose, redirect back.

Errors before the redirect URI is trusted (unknown app, unregistered redirect_uri) are shown
on a Meta-style error page and never redirect. Errors after it (unknown config_id, a
system-user configuration without response_type=code or opened on a phone) redirect back
with `error`, `error_code`, `error_reason`, `error_description`, `error_message` and
`state` (docs/decisions.md). Cancel redirects with Meta's access_denied parameters.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from . import core
from .models import SimApp, SimAsset, SimBusiness, SimConfiguration, SimPerson

MOBILE_RE = re.compile(r"Mobile|Android|iPhone|iPad|iPod", re.IGNORECASE)
OAUTH_PARAMS = (
    "client_id",
    "redirect_uri",
    "state",
    "config_id",
    "response_type",
    "override_default_response_type",
    "extras",
    "scope",
)


@dataclass
class Outcome:
    redirect_to: str | None = None
    template: str = "simulator/dialog.html"
    context: dict[str, Any] = field(default_factory=dict)
    status: int = 200


def redirect_with(base: str, params: dict[str, str]) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}{urlencode(params)}"


def error_page(title: str, message: str) -> Outcome:
    return Outcome(template="simulator/dialog_error.html", context={"title": title, "message": message}, status=400)


def error_redirect(redirect_uri: str, state: str, code: int, reason: str, message: str) -> Outcome:
    params = {
        "error": "invalid_request",
        "error_code": str(code),
        "error_reason": reason,
        "error_description": message,
        "error_message": message,
    }
    if state:
        params["state"] = state
    return Outcome(redirect_to=redirect_with(redirect_uri, params) + "#_=_")


def is_embedded_signup(extras: str) -> bool:
    try:
        data = json.loads(extras) if extras else {}
    except ValueError:
        return False
    return isinstance(data, dict) and ("sessionInfoVersion" in data or "featureType" in data)


def handle(params, *, user_agent: str, submitted: bool) -> Outcome:
    oauth = {name: (params.get(name) or "") for name in OAUTH_PARAMS}
    app = SimApp.objects.filter(app_id=oauth["client_id"]).first() if oauth["client_id"] else None
    if app is None:
        return error_page(
            "Invalid App ID", "The provided app ID does not look like a valid app ID, or the app does not exist."
        )
    if not oauth["redirect_uri"] or oauth["redirect_uri"] not in app.redirect_uris:
        return error_page(
            "URL blocked",
            "This redirect failed because the redirect URI is not whitelisted in the app's Client OAuth Settings. "
            "Make sure Client and Web OAuth Login are on and add all your app domains as Valid OAuth Redirect URIs.",
        )
    redirect_uri, state = oauth["redirect_uri"], oauth["state"]
    configuration = None
    if oauth["config_id"]:
        configuration = SimConfiguration.objects.filter(config_id=oauth["config_id"]).first()
        if configuration is None or (configuration.app_id and configuration.app_id != app.pk):
            return error_redirect(
                redirect_uri, state, 100, "invalid_config_id", "Invalid config_id: this configuration does not exist."
            )
        if configuration.token_type == SimConfiguration.TokenType.SYSTEM_USER:
            if oauth["response_type"] != "code":
                return error_redirect(
                    redirect_uri,
                    state,
                    100,
                    "invalid_response_type",
                    "System-user access tokens need the authorization code flow: send response_type=code.",
                )
            if MOBILE_RE.search(user_agent or ""):
                return error_redirect(
                    redirect_uri,
                    state,
                    100,
                    "system_user_token_unsupported_on_mobile",
                    "System-user access tokens can't be granted from a mobile device. Use a computer.",
                )
    if submitted and params.get("action") == "cancel":
        denied = {
            "error": "access_denied",
            "error_code": "200",
            "error_description": "Permissions error",
            "error_reason": "user_denied",
        }
        if state:
            denied["state"] = state
        return Outcome(redirect_to=redirect_with(redirect_uri, denied) + "#_=_")

    people = list(SimPerson.objects.all())
    person = next((p for p in people if p.user_id == params.get("person")), people[0] if people else None)
    if person is None:
        return error_page("Nobody to log in as", "The simulator has no people yet: seed its world first.")
    businesses = list(person.businesses.all())
    asset_types = list(configuration.asset_types) if configuration else [k.value for k in SimAsset.Kind]
    choices = [(b, list(assets_for(b, asset_types))) for b in businesses]
    context = {
        "app": app,
        "configuration": configuration,
        "oauth": oauth,
        "people": people,
        "person": person,
        "choices": choices,
        "permissions": configuration.permissions if configuration else split_scope(oauth["scope"]),
        "embedded_signup": is_embedded_signup(oauth["extras"]),
        "error": "",
    }
    if not (submitted and params.get("action") == "allow"):
        return Outcome(context=context)

    business = next((b for b in businesses if b.business_id == params.get("business")), None)
    if business is None and len(businesses) == 1:
        business = businesses[0]
    if business is None:
        context["error"] = "Choose the business to connect."
        return Outcome(context=context, status=400)
    allowed = {a.asset_id for a in assets_for(business, asset_types)}
    chosen = [str(a).removeprefix("act_") for a in params.getlist("asset")] if hasattr(params, "getlist") else []
    outside = [a for a in chosen if a not in allowed]
    if outside:
        context["error"] = f"These assets don't belong to {business.name}: {', '.join(outside)}."
        return Outcome(context=context, status=400)
    code = core.create_code(
        app,
        redirect_uri=redirect_uri,
        configuration=configuration,
        person=person,
        business=business,
        asset_ids=chosen,
        scopes=None if configuration else split_scope(oauth["scope"]),
        embedded_signup=context["embedded_signup"],
    )
    result = {"code": code.value}
    if state:
        result["state"] = state
    return Outcome(redirect_to=redirect_with(redirect_uri, result) + "#_=_")


def assets_for(business: SimBusiness, asset_types: list[str]):
    owned = business.owned_assets.filter(kind__in=asset_types)
    shared = business.client_assets.filter(kind__in=asset_types)
    return (owned | shared).distinct().order_by("kind", "asset_id")


def split_scope(scope: str) -> list[str]:
    return [s.strip() for s in scope.split(",") if s.strip()]
