"""Error reports to Sentry carry no token, code, signed request, cookie, local variable or request body."""

import json
import os
import subprocess
import sys
from pathlib import Path

from common.sentry import FILTERED, scrub_event

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "EAABwzLixnjYBO" + "Zx9" * 20


def test_scrubbing_replaces_sensitive_keys_query_parameters_headers_and_anything_shaped_like_a_token():
    event = {
        "message": f"Graph call failed for {TOKEN}",
        "request": {
            "url": "https://portal.example.com/connect/callback/",
            "query_string": "code=AUTH-CODE&state=STATE-VALUE&page=2",
            "headers": [["Authorization", f"OAuth {TOKEN}"], ["User-Agent", "Firefox"]],
            "cookies": {"sessionid": "SESSION"},
            "data": {"signed_request": "SIGNED", "invitation": "3"},
        },
        "extra": {"app_token": "100000000000001|abcdefghijklmnopqrstuvwxyz"},
        "breadcrumbs": {"values": [{"message": f"token={TOKEN}"}]},
    }
    scrubbed = json.dumps(scrub_event(event))
    for secret in (TOKEN, "AUTH-CODE", "STATE-VALUE", "SESSION", "SIGNED", "abcdefghijklmnopqrstuvwxyz"):
        assert secret not in scrubbed, secret
    request = scrub_event(event)["request"]
    assert request["query_string"] == f"code={FILTERED.replace('[', '%5B').replace(']', '%5D')}&state=" + (
        FILTERED.replace("[", "%5B").replace("]", "%5D") + "&page=2"
    )
    assert request["headers"] == [["Authorization", FILTERED], ["User-Agent", "Firefox"]]
    assert request["data"]["invitation"] == "3"


SCRIPT = r"""
import json, os
import django
django.setup()
import sentry_sdk
from sentry_sdk.transport import Transport
from common.sentry import init_sentry

events = []

class Capture(Transport):
    def capture_envelope(self, envelope):
        events.extend(item.payload.json for item in envelope.items if item.type == "event")

init_sentry("http://public@127.0.0.1:9/1", environment="test", transport=Capture)

from django.urls import path

def broken(request):
    token = os.environ["TEST_TOKEN"]
    raise RuntimeError("the Graph call failed for " + token)

urlpatterns = [path("connect/callback/", broken), path("meta/webhooks/", broken)]

from django.test import Client, override_settings
with override_settings(ROOT_URLCONF="__main__", DEBUG=False, ALLOWED_HOSTS=["testserver"]):
    client = Client(raise_request_exception=False)
    client.get("/connect/callback/?code=AUTH-CODE&state=STATE", HTTP_COOKIE="sessionid=SESSION-SECRET")
    client.post("/meta/webhooks/", b'{"secret": "BODY-SECRET"}', content_type="application/json",
                HTTP_X_HUB_SIGNATURE_256="sha256=SIGNATURE-SECRET")
sentry_sdk.flush()
print(json.dumps(events))
"""


def test_an_error_reported_to_sentry_by_django_carries_none_of_the_request_s_secrets(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "PORTAL_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TEST_TOKEN": TOKEN,
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(events) == 2
    sent = json.dumps(events)
    for secret in (TOKEN, "AUTH-CODE", "SESSION-SECRET", "BODY-SECRET", "SIGNATURE-SECRET"):
        assert secret not in sent, secret
    frames = [frame for event in events for value in event["exception"]["values"]
              for frame in value["stacktrace"]["frames"]]  # fmt: skip
    assert frames and not any("vars" in frame for frame in frames)  # no local variables
    assert all(event.get("request", {}).get("data") in (None, "") for event in events)  # no request bodies
    assert "RuntimeError" in sent
