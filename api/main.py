"""The API's one NinjaAPI: version 1 under /api/v1/, its routers, error handlers and schema (D40).

Adding an area: write ``api/routers/<area>.py`` with ``router = Router(tags=["<area>"])`` and its
endpoints (``auth=require_scope(...)``, thin: parse, call the owning app's service, answer), then
add it to ``ROUTERS`` below. Errors, the 401/403/422/429 answers in the schema, the rate limits,
the audit and the schema tests come with it (docs/architecture.md, "The API").
"""

from __future__ import annotations

import importlib

from ninja import NinjaAPI
from ninja.openapi.docs import Swagger

from .errors import install_handlers
from .schemas import ErrorOut

# (URL prefix under /api/v1/, router module). One line per area.
ROUTERS = [
    ("/", "api.routers.service"),
    ("/assets/", "api.routers.assets"),
    ("/graph/", "api.routers.graph"),
    ("/", "api.routers.usage"),
    ("/", "api.routers.reconnect"),
    ("/", "api.routers.health"),
]

DESCRIPTION = """The provider's services get working Meta access for their clients' assets through this API.

Authenticate every request with a service credential from the staff console:
`Authorization: Bearer <secret>`. Each endpoint needs one scope (shown with it). Errors are
always `{"error": {"code": "...", "message": "..."}}`; refusals change nothing.
"""

# Answers every authenticated operation may give, added to each operation's schema.
COMMON_ERRORS = {
    "401": "No credential, or a wrong or revoked one.",
    "403": "The credential lacks the scope this endpoint needs.",
    "422": "A parameter or the body is not valid (see error.fields).",
    "429": "Too many requests: wait Retry-After seconds.",
}


class PortalAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        scopes = self.operation_scopes()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorOut", ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}"))
        components.update(ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}))
        components["ErrorOut"].pop("$defs", None)
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                responses = operation["responses"] = {str(status): answer for status, answer in
                                                      operation.get("responses", {}).items()}
                if operation.get("security"):
                    for status, description in COMMON_ERRORS.items():
                        responses.setdefault(status, {"description": description, "content": error})
                    if "429" in responses:
                        responses["429"].setdefault("headers", {"Retry-After": {
                            "schema": {"type": "integer"}, "description": "Seconds to wait."}})
                responses.setdefault("400", {"description": "Malformed: a NUL or control character in the address, "
                                                            "or a body that is not JSON.", "content": error})
                if "{" in path:
                    responses.setdefault("404", {"description": "Not found (or not visible to this credential).",
                                                 "content": error})
                scope = scopes.get(operation.get("operationId"))
                if scope:
                    operation["x-scope"] = scope
                    description = operation.get("description", "")
                    if not description.startswith("Scope:"):  # one operation may serve several methods
                        operation["description"] = f"Scope: `{scope}`.\n\n{description}".strip()
        return schema

    def operation_scopes(self) -> dict[str, str]:
        """operationId -> the scope its credential check asks for."""
        found = {}
        for bound_router in self._get_bound_routers():
            for path_view in bound_router.path_operations.values():
                for operation in path_view.operations:
                    for auth in operation.auth_callbacks or ():
                        if getattr(auth, "scope", None):
                            found[operation.operation_id or self.get_openapi_operation_id(operation)] = auth.scope
        return found


def build_api() -> PortalAPI:
    api = PortalAPI(
        title="Portal API",
        version="1",
        description=DESCRIPTION,
        urls_namespace="api-v1",
        # Swagger UI from django-ninja's own static files (no CDN); no validator badge (it is fetched
        # from another host, which the Content-Security-Policy refuses).
        docs=Swagger(settings={"validatorUrl": None, "tryItOutEnabled": False}),
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    install_handlers(api)
    for prefix, module in ROUTERS:
        api.add_router(prefix, importlib.import_module(module).router)
    return api


api = build_api()
