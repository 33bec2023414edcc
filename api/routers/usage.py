"""Usage reports (scope usage:write): calls a service made to Meta without the proxy, for the upkeep rule (D58).

Thin: ``verification.usage_reports`` reads, checks and stores the report; each (service, hour,
family) replaces what the service reported before, so a report sent twice counts once.
"""

from datetime import datetime
from typing import Literal

from ninja import Field, Router, Schema

from verification.usage_reports import MAX_ROWS, ReportRefused, parse_report, store_report

from ..auth import require_scope
from ..errors import ApiError
from ..models import Scope
from ..schemas import ErrorOut

router = Router(tags=["usage"])


class UsageHour(Schema):
    hour: datetime = Field(description="Start of the hour, with its time zone (2026-12-02T05:00:00Z).")
    family: Literal["graph", "marketing"] = Field(
        description="marketing: Marketing API calls (ad accounts, campaigns, insights...); graph: every other call.")
    calls: int = Field(ge=0, description="Calls made in that hour (the hour's total so far, for the running hour).")
    errors: int = Field(ge=0, description="Of those, calls Meta did not answer with a success.")


class UsageReport(Schema):
    hours: list[UsageHour] = Field(min_length=1, max_length=MAX_ROWS)


class UsageStored(Schema):
    accepted: int = Field(description="Hours in this report.")
    new: int = Field(description="Hours not reported before by this service.")
    replaced: int = Field(description="Hours this service had reported: their figures are replaced by these.")


def _inline(schema, defs=None):
    """A model's JSON schema with its definitions written in place (the body is read by the service, not ninja)."""
    if defs is None:
        defs = schema.pop("$defs", {})
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(dict(defs[schema["$ref"].rsplit("/", 1)[-1]]), defs)
        return {key: _inline(value, defs) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inline(value, defs) for value in schema]
    return schema


BODY = {"required": True, "content": {"application/json": {"schema": _inline(UsageReport.model_json_schema())}}}


@router.post("/usage", auth=require_scope(Scope.USAGE_WRITE), url_name="usage_report",
             response={200: UsageStored, 400: ErrorOut}, summary="Report calls made to Meta without the proxy",
             openapi_extra={"requestBody": BODY})
def usage_report(request):
    """Per-hour counts of calls and errors per API family, for calls your service made to Meta
    directly (calls through `/api/v1/graph/` are counted by the portal: do not report them).
    Idempotent per service, hour and family: a later report of an hour replaces the earlier one,
    so report the running hour as often as you like with its total so far. Refused (400, nothing
    stored): a body that is not JSON, an hour not yet started, more than 30 days ago or not on the
    hour, a negative count, more errors than calls, an unknown family."""
    try:
        rows = parse_report(request.body)
    except ReportRefused as refused:
        raise ApiError(400, refused.code, refused.message) from None
    stored = store_report(request.auth.name, rows)
    return {"accepted": stored.accepted, "new": stored.new, "replaced": stored.replaced}
