from django.apps import AppConfig


class VerificationConfig(AppConfig):
    name = "verification"
    verbose_name = "Standing with Meta"

    def ready(self) -> None:
        from graph.hooks import register_call_hook

        from .ledger import record_calls

        register_call_hook(record_calls)
