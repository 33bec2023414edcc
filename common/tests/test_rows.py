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
