import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from config.handlers import PortalWSGIApplication  # noqa: E402

application = PortalWSGIApplication()

# gunicorn runs no system checks: refuse unsafe production settings here, before serving.
from config.checks import refuse_unsafe_production  # noqa: E402

refuse_unsafe_production()
