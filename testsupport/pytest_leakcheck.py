"""Pytest plugin: the whole-run leak check (root ``conftest.py`` loads it).

For the whole session a ``LeakRecorder`` hears every URL ``requests`` sends, every log
record and every request line Django's test servers log; at the end it looks for the app
secret and every token, code and secret the simulator issued (decisions.md D15).
"""

from __future__ import annotations

import pytest

from .leakcheck import LeakRecorder


def leak_check_secrets() -> list[str]:
    """The app secret, and every token, code and secret the simulator issued during the run."""
    from django.conf import settings

    secrets = [settings.META_APP_SECRET]
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
