import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# gunicorn runs no system checks: refuse unsafe production settings here, before serving.
from config.checks import refuse_unsafe_production  # noqa: E402

refuse_unsafe_production()
