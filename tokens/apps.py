from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"

    def ready(self) -> None:
        from . import staff_jobs  # noqa: F401  (registers the staff actions' jobs with staffjobs)
