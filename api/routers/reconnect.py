"""Replace expired tokens (scope reconnect:write): one new token, the assets it serves (tokens.reconnect, D75)."""

from typing import Literal

from django.views.decorators.debug import sensitive_variables
from ninja import Field, Router, Schema

from tokens import reconnect

from .. import audit
from ..auth import allowed_client_ids, allowed_configuration_ids, require_scope
from ..errors import ApiError
from ..models import Scope
from ..schemas import ErrorOut

router = Router(tags=["reconnect"])


class ReconnectIn(Schema):
    access_token: str = Field(description="The new access token (user or system-user) from Facebook Login for "
                                          "Business. A short-lived user token is exchanged for a long-lived one.")
    asset_ids: list[str] = Field(description="Meta ids of the assets the token is for (an ad account's with or "
                                             "without act_), each once; at most RECONNECT_MAX_ASSETS (100 by "
                                             "default).", examples=[["100200300", "act_400500600"]])


class AssetStatusOut(Schema):
    asset_id: str
    status: Literal["moved", "already_current", "not_covered", "other_client", "unknown"]
    message: str
    kind: str | None = Field(description="The asset's kind, when it is this client's.")
    name: str | None = Field(description="The asset's name, when it is this client's and known.")


class ReconnectOut(Schema):
    client_id: int | None = Field(description="The client the token was granted for (null: none of the assets).")
    token_id: int | None = Field(description="The portal's id of the token now serving the moved assets.")
    replaced_token_id: int | None = Field(description="The token it superseded (kept, never deleted).")
    moved: int = Field(description="How many of the assets moved to the token with this request.")
    assets: list[AssetStatusOut] = Field(description="One entry per asset id sent, in the order sent.")


@router.post("/reconnect", auth=require_scope(Scope.RECONNECT_WRITE), url_name="reconnect",
             response={200: ReconnectOut, 409: ErrorOut, 502: ErrorOut},
             summary="Replace expired tokens: move the assets a new token covers to it")
@sensitive_variables("body")
def reconnect_assets(request, body: ReconnectIn):
    """Meta's "Replace expired tokens": the portal inspects the token (this app's, valid, its type, scopes and
    granular scopes), stores it encrypted as onboarding does (the client's previous token of that configuration
    is superseded, never deleted) and answers per asset `moved`, `already_current`, `not_covered` (the token's
    grant does not include it), `other_client` or `unknown`. A bad token (another app's, invalid, expired) is a
    422 and nothing moves; the same request twice changes nothing the second time."""
    credential = request.auth
    try:
        result = reconnect.reconnect_assets(
            body.access_token, body.asset_ids, client_ids=allowed_client_ids(credential),
            configuration_ids=allowed_configuration_ids(credential), actor=f"api:{credential.name}"[:60])
    except reconnect.ReconnectRefused as refusal:
        raise ApiError(refusal.status, refusal.code, refusal.message)
    audit.about(request, client_id=result.client_id)
    return {
        "client_id": result.client_id,
        "token_id": result.token.pk if result.token is not None and result.client_id is not None else None,
        "replaced_token_id": result.replaced_token_id,
        "moved": result.count(reconnect.MOVED),
        "assets": [vars(outcome) for outcome in result.assets],
    }

