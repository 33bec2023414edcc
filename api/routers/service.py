"""About the calling credential itself: a service checks its setup with this."""

from datetime import datetime

from ninja import Router, Schema

from ..auth import allowed_client_ids, allowed_configuration_ids, require_credential

router = Router(tags=["credential"])


class CredentialOut(Schema):
    name: str
    scopes: list[str]
    client_ids: list[int] | None  # null: every client
    configuration_ids: list[int] | None  # null: every configuration
    created_at: datetime


@router.get("/credential", auth=require_credential(), response=CredentialOut, url_name="credential",
            summary="The calling credential: its name, scopes and limits")
def credential(request):
    """Any valid credential may call this, whatever its scopes. `client_ids` and `configuration_ids`
    are null when the credential is not limited."""
    credential = request.auth
    clients, configurations = allowed_client_ids(credential), allowed_configuration_ids(credential)
    return {
        "name": credential.name,
        "scopes": sorted(credential.scopes),
        "client_ids": sorted(clients) if clients is not None else None,
        "configuration_ids": sorted(configurations) if configurations is not None else None,
        "created_at": credential.created_at,
    }
