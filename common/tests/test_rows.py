"""common.rows: rows read as the ORM reads them; on PostgreSQL, statements planned once per connection."""

from __future__ import annotations

import pytest
from django.db import connection

from common import rows
from testsupport.factories import make_client, make_token
from tokens.models import AccessToken

pytestmark = pytest.mark.django_db


def test_a_row_becomes_the_instance_the_orm_would_make_with_the_other_fields_deferred():
    token = make_token(make_client(), scopes=["ads_read", "pages_show_list"])
    columns = rows.Columns("t", AccessToken, ("id", "kind", "scopes", "expires_at", "created_at"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns.sql()} FROM tokens_accesstoken t WHERE t.id = %s", [token.pk])  # noqa: S608
        made = columns.instance(cursor.fetchone(), 0)

    orm = AccessToken.objects.only("id", "kind", "scopes", "expires_at", "created_at").get(pk=token.pk)
    assert (made.pk, made.kind, made.scopes, made.expires_at, made.created_at) == (
        orm.pk, orm.kind, orm.scopes, orm.expires_at, orm.created_at)
    assert made.get_deferred_fields() == orm.get_deferred_fields()


def _row_of(columns, table, pk):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns.sql()} FROM {table} t WHERE t.id = %s", [pk])  # noqa: S608
        return cursor.fetchone()


def test_instances_built_directly_equal_those_of_the_orm_state_foreign_keys_and_transitions_included():
    token = make_token(make_client(), scopes=["ads_read"], status=AccessToken.Status.ACTIVE)
    names = ("id", "client_id", "status", "scopes", "expires_at")
    columns = rows.Columns("t", AccessToken, names)
    made = columns.instance(_row_of(columns, "tokens_accesstoken", token.pk), 0)
    orm = AccessToken.objects.only(*names).get(pk=token.pk)

    assert columns._built_directly
    assert vars(made) | {"_state": None} == vars(orm) | {"_state": None}  # the same attributes, nothing else
    assert (made._state.adding, made._state.db) == (orm._state.adding, orm._state.db) == (False, "default")
    assert made._loaded_status == AccessToken.Status.ACTIVE  # StatusTransitionsMixin.after_from_db ran
    assert made.client == token.client and made.get_deferred_fields() == orm.get_deferred_fields()
    made.status = AccessToken.Status.INVALID
    made.save(update_fields=["status"])  # saved as the ORM's instance saves
    assert AccessToken.objects.get(pk=token.pk).status == AccessToken.Status.INVALID


def test_with_an_init_signal_listening_or_an_unknown_from_db_the_orm_builds_the_instance(monkeypatch):
    from django.db.models.signals import post_init

    token = make_token(make_client())
    columns = rows.Columns("t", AccessToken, ("id", "kind"))
    seen = []

    def listener(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(listener, sender=AccessToken)
    try:
        made = columns.instance(_row_of(columns, "tokens_accesstoken", token.pk), 0)
    finally:
        post_init.disconnect(listener, sender=AccessToken)
    assert seen == [made]

    original = AccessToken.from_db.__func__

    def from_db(cls, db, field_names, values):  # an override that does more, not marked: the ORM's way
        instance = original(cls, db, field_names, values)
        instance.special = True
        return instance

    monkeypatch.setattr(AccessToken, "from_db", classmethod(from_db))
    columns = rows.Columns("t", AccessToken, ("id", "kind"))
    assert not columns._built_directly
    assert columns.instance(_row_of(columns, "tokens_accesstoken", token.pk), 0).special


def test_unknown_columns_are_refused():
    with pytest.raises(ValueError, match="no columns"):
        rows.Columns("t", AccessToken, ("id", "nope"))


def test_statements_run_again_and_again_are_prepared_once_on_postgresql(postgres_required):
    statement = "SELECT id FROM tokens_accesstoken WHERE kind = %s AND id > %s"
    for attempt in range(8):
        with rows.planned_once() as cursor:
            cursor.execute(statement, ["user", attempt])
            cursor.fetchall()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [text for (text,) in cursor.fetchall()]
    assert any("tokens_accesstoken WHERE kind = $1" in text for text in prepared), prepared
