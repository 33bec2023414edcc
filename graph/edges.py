"""Which edges list the assets a token reaches, and which fields to ask of each.

One table for every reader: ``GraphClient.list_assets`` (edge by edge) and the health sweep's
field expansion (all edges in one call, with ``user_access_expire_time`` on user tokens).
A user token reads its own edges on ``me``; a system-user token the ``assigned_*`` edges of
its system user.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AssetEdge:
    name: str  # the edge on the node: "accounts", "assigned_pages", ...
    kind: str  # the asset kind it lists (tokens.models.Asset.Kind values)
    fields: str  # Meta refuses a field a node type doesn't have: account_id exists on ad accounts only


USER_EDGES = (
    AssetEdge("accounts", "page", "id,name"),
    AssetEdge("adaccounts", "ad_account", "id,account_id,name"),
    AssetEdge("businesses", "business", "id,name"),
)
SYSTEM_USER_EDGES = (
    AssetEdge("assigned_pages", "page", "id,name"),
    AssetEdge("assigned_ad_accounts", "ad_account", "id,account_id,name"),
    AssetEdge("assigned_whatsapp_business_accounts", "whatsapp_business_account", "id,name"),
    AssetEdge("assigned_product_catalogs", "catalog", "id,name"),
)
# Asked with the assets of user tokens: when a managed-account migration ends the person's access.
ACCESS_EXPIRY_FIELD = "user_access_expire_time"
