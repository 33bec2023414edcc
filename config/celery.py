import os
from pathlib import Path

from celery import Celery, signals

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


@signals.worker_init.connect
@signals.beat_init.connect
def refuse_unsafe_production(**kwargs) -> None:
    """A worker or beat with unsafe production settings stops before taking any work.

    Celery logs and swallows exceptions raised by signal receivers; SystemExit is not one.
    """
    import django
    from django.core.exceptions import ImproperlyConfigured

    django.setup()
    from config.checks import refuse_unsafe_production as refuse

    try:
        refuse()
    except ImproperlyConfigured as error:
        raise SystemExit(str(error))


@signals.setup_logging.connect
def keep_djangos_logging(**kwargs) -> None:
    """Django's LOGGING (settings) already configured logging; Celery must not replace it."""


@signals.before_task_publish.connect
def carry_request_id(headers=None, **kwargs) -> None:
    """A task queued while serving a request logs that request's id."""
    from common.logs import current_request_id

    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault("portal_request_id", request_id)


@signals.task_prerun.connect
def bind_task_log_context(task_id=None, task=None, **kwargs) -> None:
    from common.logs import bind_task

    request_id = getattr(task.request, "portal_request_id", None) if task is not None else None
    bind_task(task_id, request_id=request_id)


@signals.task_postrun.connect
def clear_task_log_context(**kwargs) -> None:
    from common.logs import clear_context

    clear_context()
