from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    name = "onboarding"

    def ready(self) -> None:
        # tokens cannot import onboarding (it is below it): onboarding hands it what it needs.
        from tokens.links import register_reconnect_url_builder
        from tokens.signals import connection_states_changed

        from . import staff_jobs  # noqa: F401  (registers the staff actions' jobs with staffjobs)
        from .client_status import follow_connection_states
        from .links import reconnect_url, reconnect_urls

        register_reconnect_url_builder(reconnect_url, many=reconnect_urls)
        connection_states_changed.connect(follow_connection_states, dispatch_uid="onboarding.follow_connection_states")
