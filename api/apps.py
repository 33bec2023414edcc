from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The provider's API (/api/v1/): service credentials, their audit, the routers of every area.

    Sits on top (like console): it calls the services of tokens, onboarding and verification;
    nothing of the portal imports it except the console's client page (its "API use" section).
    """

    name = "api"
    verbose_name = "API"
