import pytest

from testsupport.factories import reconnect_url_stub


@pytest.fixture
def stub_reconnect_links(monkeypatch):
    """Reminder emails link to a fixed URL instead of a real invitation (onboarding's builder)."""
    monkeypatch.setattr("tokens.links._builder", reconnect_url_stub)
    monkeypatch.setattr("tokens.links._many_builder", None)
