from django.apps import AppConfig, apps
from django.db.models import signals


class ApiConfig(AppConfig):
    """The provider's API (/api/v1/): service credentials, their audit, the routers of every area.

    Sits on top (like console): it calls the services of tokens, onboarding and verification;
    nothing of the portal imports it except the console's client page (its "API use" section).
    """

    name = "api"
    verbose_name = "API"

    def ready(self) -> None:
        from . import credentials
        from .models import CLIENT_MODEL, CONFIGURATION_MODEL, ServiceCredential

        # Whatever changes a credential or what it is limited to makes every process read it again
        # (D91). A deleted client or configuration takes its rows of the limits with it.
        for signal in (signals.post_save, signals.post_delete):
            signal.connect(credentials.changed, sender=ServiceCredential, dispatch_uid="api-credential-changed")
        for through in (ServiceCredential.clients.through, ServiceCredential.configurations.through):
            signals.m2m_changed.connect(credentials.changed, sender=through, dispatch_uid=f"api-limits-{through}")
        for model in (CLIENT_MODEL, CONFIGURATION_MODEL):
            signals.post_delete.connect(credentials.changed, sender=apps.get_model(model),
                                        dispatch_uid=f"api-limited-{model}")
