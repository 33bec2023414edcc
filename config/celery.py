import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

if str(app.conf.broker_url).startswith("filesystem://"):
    # kombu's filesystem transport expects its folders to exist.
    for folder in app.conf.broker_transport_options.values():
        if isinstance(folder, str) and folder.startswith("/"):
            Path(folder).mkdir(parents=True, exist_ok=True)
    backend = str(app.conf.result_backend or "")
    if backend.startswith("file://"):
        Path(backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)


@app.task(name="portal.ping")
def ping(value: str) -> str:
    """Round-trip check used by the tests and by operators (`celery call portal.ping`)."""
    return f"pong:{value}"
