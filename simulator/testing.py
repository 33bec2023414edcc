"""The handle the `simulated_meta` pytest fixture yields (root conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from . import api, core


@dataclass
class SimulatedMeta:
    base_url: str
    graph_url: str
    dialog_url: str
    app_id: str
    app_secret: str
    redirect_uri: str
    version: str
    api: ModuleType = api

    def graph(self, path: str = "") -> str:
        """Absolute URL of a Graph path under the configured version, e.g. graph("me")."""
        return f"{self.graph_url}/{self.version}/{path.lstrip('/')}"

    @property
    def dialog(self) -> str:
        return f"{self.dialog_url}/{self.version}/dialog/oauth"

    def proof(self, token: str, proof_time: int | str | None = None) -> str:
        return core.appsecret_proof(self.app_secret, token, str(proof_time) if proof_time is not None else None)


def start(base_url: str, settings=None) -> SimulatedMeta:
    """Reset and seed the simulator and register the portal's app.

    With pytest-django's `settings` fixture, also point META_GRAPH_URL, META_DIALOG_URL and
    PORTAL_BASE_URL at the simulator (restored after the test by that fixture).
    """
    from django.conf import settings as django_settings

    api.reset()
    api.seed_world()
    api.register_app(
        django_settings.META_APP_ID,
        django_settings.META_APP_SECRET,
        [f"{base_url}/connect/callback/"],
        deauthorize_url=f"{base_url}/meta/deauthorize/",
        data_deletion_url=f"{base_url}/meta/data-deletion/",
        webhook_url=f"{base_url}/meta/webhooks/",
    )
    if settings is not None:
        settings.META_GRAPH_URL = f"{base_url}/simulator/graph"
        settings.META_DIALOG_URL = f"{base_url}/simulator/www"
        settings.PORTAL_BASE_URL = base_url
    return SimulatedMeta(
        base_url=base_url,
        graph_url=f"{base_url}/simulator/graph",
        dialog_url=f"{base_url}/simulator/www",
        app_id=django_settings.META_APP_ID,
        app_secret=django_settings.META_APP_SECRET,
        redirect_uri=f"{base_url}/connect/callback/",
        version=django_settings.META_GRAPH_VERSION,
    )
