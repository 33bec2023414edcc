import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="portal.ping")
def ping(value: str) -> str:
    """Round-trip check used by the tests and by operators (`celery call portal.ping`)."""
    return f"pong:{value}"
