from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Reconnect campaigns"

    def ready(self) -> None:
        from . import staff_jobs  # noqa: F401  (registers sending and reminding with staffjobs)
