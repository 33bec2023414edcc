from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "config"
    verbose_name = "Portal configuration"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the production checks)
