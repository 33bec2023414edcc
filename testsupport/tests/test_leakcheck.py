"""The whole-run leak check can fail, and it sees what the run does."""

from __future__ import annotations

import http.server
import logging

import pytest
import requests
import urllib3

from testsupport.leakcheck import LeakRecorder

SECRET = "EAAGleaky-secret-0001"
OTHER_SECRET = "EAAGleaky-secret-0004"


def test_the_check_reports_a_secret_in_a_url_with_the_secret_masked():
    recorder = LeakRecorder()
    recorder.record("url", "https://graph.example.test/v26.0/me?fields=id")
    recorder.record("url", f"https://graph.example.test/v26.0/me?access_token={SECRET}")

    leaks = recorder.find_leaks([SECRET])

    assert leaks == ["url: https://graph.example.test/v26.0/me?access_token=EAAG********"]


def test_the_check_finds_a_url_encoded_secret():
    recorder = LeakRecorder()
    recorder.record("url", "https://x.test/debug_token?access_token=1234%7Capp-secret-value")

    [leak] = recorder.find_leaks(["1234|app-secret-value"])

    assert "app-secret-value" not in leak


def test_the_check_passes_when_no_secret_appears_and_ignores_too_short_ones():
    recorder = LeakRecorder()
    recorder.record("log", "graph.client: Graph GET me -> 200")

    assert recorder.find_leaks([SECRET, "me", ""]) == []


def test_the_installed_recorder_sees_urls_sent_and_log_records():
    recorder = LeakRecorder()
    uninstall = recorder.install()
    try:
        logging.getLogger("some.module").debug("exchanging %s", "code-leaky-0002")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:9/?access_token={SECRET}", timeout=2)
        with pytest.raises(urllib3.exceptions.HTTPError):
            urllib3.PoolManager(retries=False).request("GET", f"http://127.0.0.1:9/?proof={OTHER_SECRET}")
    finally:
        uninstall()
    logging.getLogger("some.module").debug("after uninstall %s", "code-leaky-0003")

    leaks = recorder.find_leaks([SECRET, OTHER_SECRET, "code-leaky-0002", "code-leaky-0003"])

    assert len(leaks) == 3
    assert sum(leak.startswith("url: http://127.0.0.1:9/?") for leak in leaks) == 2
    assert any(leak.startswith("log: some.module: exchanging code********") for leak in leaks)


def test_the_installed_recorder_sees_exception_messages_in_log_records():
    recorder = LeakRecorder()
    uninstall = recorder.install()
    try:
        try:
            raise ValueError(f"bad token {SECRET}")
        except ValueError:
            logging.getLogger("some.module").exception("it failed")
    finally:
        uninstall()

    assert recorder.find_leaks([SECRET])


def test_request_lines_of_a_test_server_are_recorded():
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

    recorder = LeakRecorder()
    undo = recorder.record_request_lines(Handler)
    Handler.log_message(None, '"%s" %s %s', f"GET /callback?code={SECRET} HTTP/1.1", "200", "12")
    undo()

    assert recorder.find_leaks([SECRET]) == ['request line: "GET /callback?code=EAAG******** HTTP/1.1" 200 12']


def test_the_code_meta_sends_to_the_redirect_uri_is_left_out_but_not_elsewhere():
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

    recorder = LeakRecorder()
    undo = recorder.record_request_lines(Handler, oauth_redirect_paths=["/connect/callback/"])
    Handler.log_message(None, '"%s" %s %s', "GET /connect/callback/?code=code-leaky-0005&state=s HTTP/1.1", "302", "0")
    Handler.log_message(None, '"%s" %s %s', "GET /invite/?code=code-leaky-0006 HTTP/1.1", "200", "0")
    undo()

    assert recorder.find_leaks(["code-leaky-0005"]) == []
    assert recorder.find_leaks(["code-leaky-0006"])


def test_records_are_heard_even_after_logging_is_reconfigured():
    import logging.config

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    recorder = LeakRecorder()
    uninstall = recorder.install()
    try:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"level": "INFO"}})
        logging.getLogger("some.module").info("token %s", SECRET)
        recorder.hear_debug()
        logging.getLogger("some.module").debug("code %s", "code-leaky-0007")
    finally:
        uninstall()
        root.handlers[:] = handlers
        root.setLevel(level)

    assert recorder.find_leaks([SECRET])
    assert recorder.find_leaks(["code-leaky-0007"])


def test_the_session_check_is_recording_this_run(no_secret_leaks):
    logging.getLogger("graph.tests").debug("marker %s", "session-marker-0004")

    assert no_secret_leaks.find_leaks(["session-marker-0004"])
