from django.apps import AppConfig


class VerificationConfig(AppConfig):
    name = "verification"
    verbose_name = "Standing with Meta"

    def ready(self) -> None:
        from graph.hooks import register_call_hook
        from tokens.health import register_standing_causes

        from .ledger import record_calls
        from .standing import standing_causes

        register_call_hook(record_calls)
        register_standing_causes(standing_causes)
