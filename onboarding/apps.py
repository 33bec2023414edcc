from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    name = "onboarding"

    def ready(self) -> None:
        # tokens cannot import onboarding (it is below it): onboarding hands it what it needs.
        from tokens.links import register_reconnect_url_builder
        from tokens.signals import token_installed, tokens_invalidated

        from . import staff_jobs  # noqa: F401  (registers the staff actions' jobs with staffjobs)
        from .client_status import client_reconnected, clients_need_reauthorization
        from .links import reconnect_url

        register_reconnect_url_builder(reconnect_url)
        tokens_invalidated.connect(clients_need_reauthorization, dispatch_uid="onboarding.clients_need_reauthorization")
        token_installed.connect(client_reconnected, dispatch_uid="onboarding.client_reconnected")
