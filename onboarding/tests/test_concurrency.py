"""Two requests at once, on PostgreSQL (SQLite serialises everything, so it proves nothing there)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from onboarding.flow import StateError, claim_attempt
from onboarding.keys import hash_key
from onboarding.models import LoginAttempt
from tokens.install import GrantedAsset, install_token
from tokens.models import AccessToken

from .conftest import make_info

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def run_together(*functions):
    barrier = threading.Barrier(len(functions))
    results = [None] * len(functions)

    def run(index, function):
        try:
            barrier.wait()
            results[index] = function()
        except Exception as error:  # collected for the assertion
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_callbacks_with_one_state_let_exactly_one_through(postgres_required, client_business, system_user_config):
    LoginAttempt.objects.create(
        state_hash=hash_key("the-state"), session_key_hash="b" * 64, client=client_business,
        configuration=system_user_config, expires_at=timezone.now() + timedelta(minutes=15),
    )  # fmt: skip
    results = run_together(*[lambda: claim_attempt("the-state", "b" * 64)] * 4)
    claimed = [r for r in results if isinstance(r, LoginAttempt)]
    refused = [r for r in results if isinstance(r, StateError)]
    assert (len(claimed), len(refused)) == (1, 3)
    assert {error.kind for error in refused} == {"reused"}


def test_two_installs_for_one_client_and_configuration_leave_one_live_token(
    postgres_required, client_business, system_user_config
):
    def install(value):
        return lambda: install_token(
            client=client_business, configuration=system_user_config, kind="system_user", value=value,
            info=make_info(), assets=[GrantedAsset("page", "201", "Page")],
        )  # fmt: skip

    results = run_together(install("EAAB-one"), install("EAAB-two"))
    assert not [r for r in results if isinstance(r, Exception)], results
    statuses = sorted(AccessToken.objects.values_list("status", flat=True))
    assert statuses == ["active", "superseded"]
