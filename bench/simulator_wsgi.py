"""The simulator as the benchmark serves it under gunicorn (``bench/sweep.py --server gunicorn``)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connections  # noqa: E402

application = get_wsgi_application()
# The benchmark measures our code, not Meta's budget (see SERVER in sweep.py).
settings.SIMULATOR_APP_CALLS_PER_HOUR = 10**12
# One connection per worker process, as any production Django deployment keeps (the default,
# 0, opens a PostgreSQL connection per request: a fork of a backend each time).
settings.DATABASES["default"]["CONN_MAX_AGE"] = None
# Loaded once in gunicorn's master (--preload): no connection may be opened here and inherited by the workers.
connections.close_all()
