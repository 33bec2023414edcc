"""gunicorn settings for the portal (docs/deploy.md): `gunicorn config.wsgi` reads this file.

Every value can be changed from the environment, so the Procfile, the compose file and a
systemd unit all run the same command.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
# Two workers per core is gunicorn's advice for I/O-bound apps; Meta calls wait on the network.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# The OAuth callback waits on Meta (code exchange, debug_token, asset listing): up to a minute.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "100"))

# Load the app once in the master: unsafe production settings stop gunicorn itself with the
# list of what to set (config/wsgi.py), instead of every worker failing to boot in turn.
preload_app = True

# Only these addresses may tell gunicorn that the original request was HTTPS
# (X-Forwarded-Proto): the TLS-terminating proxy's. gunicorn reads FORWARDED_ALLOW_IPS itself;
# it is repeated here so the default is visible. Django reads the same header when
# DJANGO_SECURE_PROXY_SSL_HEADER is set.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# The portal writes its own access record per request (logger portal.access: JSON in production,
# with the request id, never a query string). gunicorn's access log is off unless asked for; if
# it is, this format drops the query string, where Meta puts the authorization code of
# /connect/callback/ (%(U)s is the path alone; %(r)s, the default, is the whole request line).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# gunicorn's own records in the portal's format: one JSON object per line in production.
_production = os.environ.get("DJANGO_PRODUCTION", "").lower() in ("1", "true", "yes", "on")
if os.environ.get("LOG_FORMAT", "json" if _production else "plain") == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "common.logs.JsonFormatter"}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["json"], "level": "INFO"},
        "loggers": {
            "gunicorn.error": {"handlers": ["json"], "level": loglevel.upper(), "propagate": False},
            "gunicorn.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
    }

# gunicorn 25+ opens a control socket in $HOME by default; several instances on one host would
# share its path. GUNICORN_CONTROL_SOCKET=<path> turns it on where gunicornc is wanted.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
