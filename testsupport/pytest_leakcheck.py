"""Pytest plugin: the whole-run leak check (root ``conftest.py`` loads it).

For the whole session a ``LeakRecorder`` hears every URL ``requests`` sends, every log
record and every request line Django's test servers log; at the end it looks for the app
secret, every token, code and secret the simulator issued (decisions.md D15), and every
webhook signing secret the portal generated.
"""

from __future__ import annotations

import pytest

from .leakcheck import LeakRecorder

# Webhook signing secrets and API credential secrets generated during the run (wrapped below).
_webhook_secrets: set[str] = set()


def leak_check_secrets() -> list[str]:
    """The app secret, the webhook signing secrets, and every token, code and secret the simulator issued."""
    from django.conf import settings

    secrets = [settings.META_APP_SECRET, *sorted(_webhook_secrets)]
    try:
        from simulator.api import issued_secrets
    except ImportError:  # the simulator is not installed (or not written yet)
        return secrets
    return secrets + list(issued_secrets())


@pytest.fixture(scope="session", autouse=True)
def no_secret_leaks():
    from django.core.servers.basehttp import WSGIRequestHandler
    from django.test.testcases import QuietWSGIRequestHandler

    recorder = LeakRecorder()
    # Meta puts the code in the redirect URI's query string by design (OAuth): decisions.md D12.
    redirect = {"oauth_redirect_paths": ["/connect/callback/"]}
    undo = [
        recorder.install(),
        recorder.record_request_lines(WSGIRequestHandler, **redirect),
        recorder.record_request_lines(QuietWSGIRequestHandler, **redirect),
    ]
    yield recorder
    for step in reversed(undo):
        step()
    leaks = recorder.find_leaks(leak_check_secrets())
    if leaks:
        shown = "\n".join(leaks[:25]) + (f"\n... and {len(leaks) - 25} more" if len(leaks) > 25 else "")
        pytest.fail(f"Secrets leaked into URLs, logs or request lines during the run:\n{shown}", pytrace=False)


@pytest.fixture(autouse=True)
def leak_check_hears_debug(no_secret_leaks):
    """django.setup() (Celery's Django fixup calls it) reconfigures logging; keep DEBUG records coming."""
    no_secret_leaks.hear_debug()


def _remember_generated(monkeypatch, module, name: str) -> None:
    """Wrap ``module.name()`` (a secret generator) so every secret it makes is looked for at the end."""
    generate = getattr(module, name)

    def remembered() -> str:
        secret = generate()
        _webhook_secrets.add(secret)
        return secret

    monkeypatch.setattr(module, name, remembered)


@pytest.fixture(autouse=True)
def leak_check_knows_webhook_secrets(monkeypatch):
    """Every webhook signing secret a test makes the portal generate is looked for at the end too."""
    from outbound import signing

    _remember_generated(monkeypatch, signing, "new_secret")


@pytest.fixture(autouse=True)
def leak_check_knows_api_secrets(monkeypatch):
    """Every API credential secret the portal generates is looked for at the end too (D41)."""
    from api import credentials

    _remember_generated(monkeypatch, credentials, "new_secret")
