"""HTTP faces of the simulator: the Graph API, the login dialog and the staff controls page.

Views only adapt HTTP; the behaviour lives in `endpoints`, `dialog` and `api`.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt

from . import api, core, dialog, endpoints, serving
from .models import SimApp, SimBusiness, SimDelivery


def request_params(request: HttpRequest) -> dict[str, str]:
    params = {k: v for k, v in request.GET.items()}
    if request.method in ("POST", "DELETE"):
        if request.content_type == "application/json":
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                body = {}
            if isinstance(body, dict):
                params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
        elif request.method == "POST":
            params.update({k: v for k, v in request.POST.items()})
        else:
            # Django parses form bodies of POST only; Meta reads them on DELETE too.
            params.update({k: v for k, v in QueryDict(request.body).items()})
    return params


def bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("oauth", "bearer") and value.strip():
        return value.strip()
    return None


@csrf_exempt
def graph(request: HttpRequest, rest: str = "") -> HttpResponse:
    params = request_params(request)
    token = params.pop("access_token", None) or bearer_token(request)
    version = endpoints.DEFAULT_VERSION
    first, _, remainder = rest.partition("/")
    if endpoints.VERSION_RE.match(first):
        version, rest = endpoints.effective_version(first), remainder
    prefix = request.path.split("/graph/", 1)[0] + "/graph/"
    base_url = request.build_absolute_uri(prefix)
    call = endpoints.Call(
        method=request.method or "GET",
        path=rest,
        params=params,
        token=token,
        version=version,
        base_url=base_url,
    )
    reply = serving.serve(call)
    if reply.html is not None:  # the edge's page: none of Graph's headers
        response = HttpResponse(reply.html, status=reply.status, content_type="text/html; charset=utf-8")
        for name, value in reply.headers.items():
            response[name] = value
        return response
    response = JsonResponse(reply.body, status=reply.status, safe=False)
    response["Content-Type"] = "application/json; charset=UTF-8"
    response["facebook-api-version"] = version
    response["x-fb-trace-id"] = reply.trace_id
    for name, value in reply.headers.items():
        response[name] = value
    return response


@csrf_exempt
def oauth_dialog(request: HttpRequest, version: str) -> HttpResponse:
    params = request.POST if request.method == "POST" else request.GET
    outcome = dialog.handle(
        params,
        user_agent=request.headers.get("User-Agent", ""),
        submitted=request.method == "POST",
    )
    if outcome.redirect_to:
        return HttpResponseRedirect(outcome.redirect_to)
    return render(request, outcome.template, outcome.context, status=outcome.status)


@staff_member_required
def controls(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            note = run_control(action, request.POST)
        except (ValueError, LookupError) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, note)
        return redirect("simulator:controls")
    current = core.state()
    context = {
        "state": current,
        "clock": core.now(),
        "apps": SimApp.objects.all(),
        "businesses": SimBusiness.objects.all(),
        "deliveries": SimDelivery.objects.order_by("-id")[:10],
        "token_count": api.token_summary(),
    }
    return render(request, "simulator/controls.html", context)


def _float(data, name: str) -> float:
    raw = (data.get(name) or "0").strip()
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name.replace('_', ' ').capitalize()} must be a number.")


def run_control(action: str, data) -> str:
    if action == "seed":
        api.seed_world()
        return "The fake world is seeded."
    if action == "reset":
        api.reset()
        api.seed_world()
        return "The simulator was reset and seeded again."
    if action == "faults":
        seed_text = (data.get("seed") or "").strip()
        api.set_faults(
            error_rate=_float(data, "error_rate"),
            timeout_rate=_float(data, "timeout_rate"),
            rate_limit_rate=_float(data, "rate_limit_rate"),
            latency_ms=int(_float(data, "latency_ms")),
            seed=int(seed_text) if seed_text.isdigit() else None,
            edge_error_rate=_float(data, "edge_error_rate"),
        )
        return "Faults updated."
    if action == "burst":
        requests = int(_float(data, "requests"))
        api.rate_limit_burst(requests, regain_minutes=int(_float(data, "regain_minutes")))
        return f"The next {requests} requests are throttled."
    if action == "release_hangs":
        api.release_hangs()
        return "Held requests released."
    if action == "clear_faults":
        api.clear_faults()
        return "Faults cleared."
    if action == "advance_clock":
        days = _float(data, "days")
        api.advance_clock(days * 86400)
        return f"Clock moved {days:g} days ahead."
    if action == "migrate":
        business_id = data.get("business_id", "")
        api.migrate_to_managed_accounts(business_id)
        return f"Business {business_id} moved to managed Meta accounts."
    if action == "remove_app":
        business_id = data.get("business_id", "")
        deliveries = api.remove_app(business_id)
        return f"App removed for business {business_id}; {len(deliveries)} callbacks sent."
    if action == "revoke_permission":
        permission = (data.get("permission") or "").strip()
        if not permission:
            raise ValueError("Name the permission to revoke.")
        token = (data.get("token") or "").strip()
        person_id = (data.get("person_id") or "").strip()
        if not token and not person_id:
            raise ValueError("Give a token or a person's user id.")
        changed = api.revoke_permission(permission, token=token or None, person_id=person_id or None)
        return f"{permission} revoked ({changed} token(s) changed)."
    if action == "throttle_business":
        business_id = data.get("business_id", "")
        use_cases = [u for u in (data.get("use_cases") or "").replace(",", " ").split() if u]
        until = api.throttle_business(business_id, minutes=_float(data, "minutes") or 60, use_cases=use_cases)
        return f"Business {business_id} throttled until {until:%Y-%m-%d %H:%M} UTC."
    if action == "clear_throttles":
        api.clear_throttles()
        return "No business is throttled."
    if action == "expire_token":
        if not api.expire_token((data.get("token") or "").strip()):
            raise ValueError("No token with that value.")
        return "Token expired."
    raise ValueError("Unknown action.")
