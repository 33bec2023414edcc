from django.apps import AppConfig


class OutboundConfig(AppConfig):
    """Outgoing webhooks to the provider's product. Depends on tokens and onboarding; nothing depends on it."""

    name = "outbound"

    def ready(self) -> None:
        from tokens.key_rotation import register_encrypted_field
        from tokens.signals import reminder_stages_due, token_installed, tokens_invalidated, tokens_revoked

        from . import checks, receivers
        from .models import WebhookEndpoint

        checks.register()
        # Signing secrets are encrypted like tokens: the key rotation re-encrypts them too.
        register_encrypted_field(WebhookEndpoint, "secret")
        register_encrypted_field(WebhookEndpoint, "previous_secret")
        tokens_invalidated.connect(receivers.on_tokens_invalidated, dispatch_uid="outbound.tokens_invalidated")
        tokens_revoked.connect(receivers.on_tokens_revoked, dispatch_uid="outbound.tokens_revoked")
        token_installed.connect(receivers.on_token_installed, dispatch_uid="outbound.token_installed")
        reminder_stages_due.connect(receivers.on_reminder_stages_due, dispatch_uid="outbound.reminder_stages_due")
