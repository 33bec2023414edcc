"""The working token for an asset (scope tokens:read): tokens.selection does the choosing (D43)."""

from datetime import datetime
from typing import Literal

from django.http import HttpResponse
from django.views.decorators.debug import sensitive_variables
from ninja import Field, Path, Query, Router, Schema
from ninja.renderers import JSONRenderer

from tokens import selection

from .. import audit
from ..auth import allowed_client_ids, allowed_configuration_ids, not_found, require_scope
from ..errors import ApiError
from ..links import reconnect_link
from ..models import Scope

router = Router(tags=["tokens"])



class TokenOut(Schema):
    asset_id: str = Field(description="The asset's Meta id.")
    asset_kind: str
    client_id: int
    token_id: int = Field(description="The portal's id of the token (webhook events name it).")
    kind: Literal["system_user", "granular_system_user", "page", "user"]
    access_token: str = Field(description="The value: keep it in memory, never in a URL or a log.")
    scopes: list[str]
    purpose: str | None = Field(description="A granular system-user token's purpose label.")
    expires_at: datetime | None = Field(description="null: the token does not expire.")
    access_ends_at: datetime | None = Field(
        description="The earliest of the token's expiry, its data-access expiry and the person's access to the asset.")
    reconnect_url: str | None = Field(
        description="Set when access ends within the reminder window: the link to send to the client.")


class NoTokenDetail(Schema):
    code: Literal["needs_reauthorization", "asset_not_granted", "scope_missing", "client_offboarded"]
    message: str
    reconnect_url: str | None = Field(description="The link to send to the client (null when offboarded).")
    missing_scopes: list[str] | None = Field(None, description="With scope_missing: what the token lacks.")


class NoTokenOut(Schema):
    error: NoTokenDetail


class TokenQuery(Schema):
    purpose: str | None = Field(None, max_length=200,
                                description="Prefer a granular system-user token with this purpose.")
    scopes: str | None = Field(None, max_length=2000, pattern=r"^[a-z_,]*$",
                               description="Comma-separated permissions the token must have (ads_read,ads_management).")


@router.get("/{meta_id}/token", auth=require_scope(Scope.TOKENS_READ), url_name="asset_token",
            response={200: TokenOut, 409: NoTokenOut}, summary="The token that works for this asset now")
@sensitive_variables("chosen")
def asset_token(request, query: Query[TokenQuery],
                meta_id: str = Path(..., pattern=selection.META_ID_PATTERN, examples=["100200300"],
                                    description="The asset's Meta id (an ad account's with or without act_).")):
    """Prefers a live system-user token (a granular one with the requested `purpose` first), else a Page
    token, else a user token whose grant on this asset has not ended. 409 when none works, with the
    reason as `error.code` (`needs_reauthorization`, `asset_not_granted`, `scope_missing`,
    `client_offboarded`) and the `reconnect_url` to send to the client (none for an offboarded one)."""
    credential = request.auth
    audit.about(request, asset_meta_id=meta_id)
    scopes = [scope for scope in (query.scopes or "").split(",") if scope]
    try:
        chosen = selection.working_token(
            selection.bare_meta_id(meta_id), purpose=query.purpose or None, scopes=scopes,
            client_ids=allowed_client_ids(credential), configuration_ids=allowed_configuration_ids(credential))
    except selection.AssetUnknown:
        raise not_found("asset")
    except selection.NoWorkingToken as refusal:
        audit.about(request, client_id=refusal.client_id)
        extra = {"reconnect_url": reconnect_link(refusal.token) if refusal.token is not None else None}
        if refusal.missing_scopes:
            extra["missing_scopes"] = refusal.missing_scopes
        raise ApiError(409, refusal.code, refusal.message, **extra)
    audit.about(request, client_id=chosen.client_id)
    return answer(request, {
        "asset_id": chosen.asset.meta_id,
        "asset_kind": chosen.asset.kind,
        "client_id": chosen.client_id,
        "token_id": chosen.token.pk,
        "kind": chosen.kind,
        "access_token": chosen.value,
        "scopes": chosen.scopes,
        "purpose": chosen.token.purpose or None,
        "expires_at": chosen.expires_at,
        "access_ends_at": chosen.access_ends_at,
        "reconnect_url": reconnect_link(chosen.token) if chosen.ends_within_reminder_window() else None,
    })


def answer(request, payload: dict):
    """The 200 answer as django-ninja renders it, without validating ``payload`` against ``TokenOut``
    again: every value comes from the choice, already of its type (D95). The schema tests check that
    answers conform."""
    return HttpResponse(_RENDERER.render(request, payload, response_status=200), content_type=_CONTENT_TYPE)


_RENDERER = JSONRenderer()  # the API's renderer (api.main sets none of its own)
_CONTENT_TYPE = f"{_RENDERER.media_type}; charset={_RENDERER.charset}"
