from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"

    def ready(self) -> None:
        from . import staff_jobs  # noqa: F401  (registers the staff actions' jobs with staffjobs)
        from .health import on_tokens_invalidated
        from .signals import tokens_invalidated

        # A 190 seen anywhere moves the client's connection (tokens.health, D25).
        tokens_invalidated.connect(on_tokens_invalidated, dispatch_uid="tokens.health.on_tokens_invalidated")
