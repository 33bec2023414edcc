"""The PostgreSQL backend's health check (D92): no statement while the server said nothing, and a
connection the server ended is found unusable and replaced before a request uses it."""

from __future__ import annotations

import pytest
from django.db.backends.postgresql import base as django_postgresql

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def kept(postgres_required):
    """A second connection to the test database, kept across 'requests' with health checks, as the
    web processes keep theirs (CONN_MAX_AGE)."""
    from django.db import connections

    connection = connections["default"]
    wrapper = type(connection)({**connection.settings_dict, "CONN_MAX_AGE": 600, "CONN_HEALTH_CHECKS": True},
                               alias="kept")
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    yield wrapper
    wrapper.close()


@pytest.fixture
def statement_checks(monkeypatch) -> list[int]:
    """Each time Django's own check (SELECT 1) runs."""
    done, check = [], django_postgresql.DatabaseWrapper.is_usable

    def counted(self):
        done.append(1)
        return check(self)

    monkeypatch.setattr(django_postgresql.DatabaseWrapper, "is_usable", counted)
    return done


def test_the_engine_on_postgresql_is_the_portal_s(postgres_required):
    from django.db import connection

    assert connection.settings_dict["ENGINE"] == "common.postgresql"


def test_an_idle_connection_the_server_kept_is_usable_without_a_statement(kept, statement_checks):
    assert kept.is_usable() is True
    assert statement_checks == []


def test_inside_a_transaction_django_s_check_decides(kept, statement_checks):
    kept.set_autocommit(False)
    with kept.cursor() as cursor:
        cursor.execute("SELECT 1")  # a transaction is open now
    assert kept.is_usable() is True
    assert statement_checks == [1]
    kept.rollback()
    kept.set_autocommit(True)


def test_a_connection_the_server_ended_is_replaced_before_the_next_request_uses_it(kept):
    from django.db import connection

    with kept.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    first = kept.connection
    with connection.cursor() as cursor:  # as a database restart ends it; waits until the backend is gone
        cursor.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])

    assert kept.is_usable() is False
    kept.health_check_done = False
    kept.close_if_health_check_failed()  # what Django does when a request starts
    with kept.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert kept.connection is not first
