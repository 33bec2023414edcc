"""The client's tests hear their own hook calls only (the verification app's ledger hook
would otherwise write to, or be refused by, the database on every call)."""

from __future__ import annotations

import pytest

from graph import hooks


@pytest.fixture(autouse=True)
def only_our_call_hooks():
    registered = list(hooks._hooks)
    hooks._hooks.clear()
    yield
    hooks._hooks[:] = registered
