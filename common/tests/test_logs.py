"""Log records carry the request id, the Celery task id and the client id, and no request secrets."""

import io
import json
import logging

import pytest

from common.logs import JsonFormatter, LogContextFilter, SensitiveRequestFilter
from config.celery import app as celery_app


@pytest.fixture
def json_lines():
    """Root records formatted as production formats them; returns a function giving the lines so far."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(LogContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


@pytest.fixture
def captured(request):
    """Records reaching the handlers of one logger (after that logger's filters)."""

    class Capture(logging.Handler):
        def __init__(self):
            super().__init__()
            self.records = []

        def emit(self, record):
            self.records.append(record)

    def attach(name: str):
        handler = Capture()
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        request.addfinalizer(lambda: logger.removeHandler(handler))
        return handler.records

    return attach


def test_every_json_line_of_a_request_carries_its_request_id(client, db, json_lines):
    response = client.get("/")
    request_id = response["X-Request-ID"]
    lines = [line for line in json_lines() if line["request_id"] == request_id]
    access = [line for line in lines if line["logger"] == "portal.access"]
    assert len(access) == 1
    assert access[0] | {"duration_ms": None} == access[0] | {
        "message": "GET / 200", "method": "GET", "path": "/", "status": 200, "duration_ms": None,
        "level": "INFO", "task_id": None, "client_id": None,
    }  # fmt: skip
    assert all(line["request_id"] for line in json_lines() if line["logger"] == "portal.access")


def test_a_proxy_s_request_id_is_kept_and_a_malformed_one_replaced(client, db):
    assert client.get("/", HTTP_X_REQUEST_ID="0123456789abcdef0123456789abcdef")["X-Request-ID"] == (
        "0123456789abcdef0123456789abcdef"
    )
    replaced = client.get("/", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert replaced != "bad id\nwith newline" and len(replaced) == 32


def test_the_client_served_is_on_the_records_of_its_invitation_page(client, json_lines, client_business):
    from onboarding.invitations import create_invitation
    from testsupport.factories import make_configuration

    _, key = create_invitation(client_business, make_configuration())
    response = client.get(f"/invite/{key}/")
    assert response.status_code == 200
    access = [line for line in json_lines() if line["logger"] == "portal.access"]
    assert access[-1]["client_id"] == client_business.pk
    assert access[-1]["path"] == "/invite/[key]/"  # the link's key is a bearer secret
    assert key not in json.dumps(json_lines())


@celery_app.task(name="test.logs_a_line")
def logs_a_line() -> None:
    logging.getLogger("test.task").warning("inside the task")


def test_records_written_by_a_celery_task_carry_its_task_id(json_lines):
    result = logs_a_line.apply()
    lines = [line for line in json_lines() if line["logger"] == "test.task"]
    assert [line["task_id"] for line in lines] == [result.id]


def test_a_task_queued_while_serving_a_request_logs_that_request_s_id():
    from common.logs import RequestContextMiddleware
    from config.celery import carry_request_id

    seen = {}

    def view(request):
        headers = {}
        carry_request_id(headers=headers)
        seen.update(headers)
        from django.http import HttpResponse

        return HttpResponse()

    from django.test import RequestFactory

    response = RequestContextMiddleware(view)(RequestFactory().get("/"))
    assert seen == {"portal_request_id": response["X-Request-ID"]}


def test_django_s_request_records_for_the_callback_reach_no_handler_with_the_code(client, db, captured):
    records = captured("django.request")
    response = client.post("/connect/callback/?code=SECRET-CODE-123&state=abc")  # GET only: 405
    assert response.status_code == 405
    assert records and all(getattr(record, "request", None) is None for record in records)
    assert "SECRET-CODE-123" not in " ".join(record.getMessage() for record in records)


def test_django_s_request_records_for_webhooks_reach_no_handler_with_the_body(client, db, captured):
    records = captured("django.request")
    response = client.post("/meta/webhooks/", b'{"secret": "BODY-SECRET"}', content_type="application/json")
    assert response.status_code == 403
    assert records and all(getattr(record, "request", None) is None for record in records)


def test_other_paths_keep_the_request_on_django_s_records(client, db, captured):
    records = captured("django.request")
    client.get("/no-such-page/")
    assert records and records[0].request.path == "/no-such-page/"


def test_runserver_request_lines_lose_the_callback_s_query_string():
    record = logging.LogRecord(
        "django.server", logging.INFO, "", 0, '"%s" %s %s', ("GET /connect/callback/?code=XYZ HTTP/1.1", "302", "0"),
        None,
    )
    SensitiveRequestFilter().filter(record)
    assert record.getMessage() == '"GET /connect/callback/ HTTP/1.1" 302 0'
    other = logging.LogRecord("django.server", logging.INFO, "", 0, '"%s"', ("GET /admin/?q=x HTTP/1.1",), None)
    SensitiveRequestFilter().filter(other)
    assert other.getMessage() == '"GET /admin/?q=x HTTP/1.1"'


def test_the_plain_format_names_the_context_and_the_json_format_writes_one_object_per_line():
    from django.conf import settings

    record = logging.LogRecord("x", logging.ERROR, "", 0, "multi\nline", None, None)
    LogContextFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line and json.loads(line)["message"] == "multi\nline"
    assert "%(log_context)s" in settings.LOGGING["formatters"]["plain"]["format"]
