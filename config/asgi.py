import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()

# ASGI servers run no system checks: refuse unsafe production settings here, before serving.
from config.checks import refuse_unsafe_production  # noqa: E402

refuse_unsafe_production()
