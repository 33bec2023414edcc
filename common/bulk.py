"""Writing a few fields of many rows in one statement per batch, whatever the number of rows."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection as db_connection

BULK_ROWS = 1000


def bulk_set(objs: list, fields: list[str], *, model=None, only_statuses: Sequence[str] | None = None) -> None:
    """Write these fields of these rows in one statement per batch of rows.

    Django's ``bulk_update`` builds a CASE expression per row and field, which costs
    seconds of CPU for a few hundred rows. On PostgreSQL one array per column
    is unnested (``UPDATE ... FROM unnest(%s::bigint[], ...)``): a handful of parameters
    whatever the number of rows, so neither psycopg nor the server parses a statement with
    thousands of placeholders. SQLite (3.33+) takes ``WITH v AS (VALUES ...) UPDATE ... FROM v``.
    ``objs`` are instances of ``model``, or plain objects with its attribute names and ``pk``.
    """
    if not objs:
        return
    model = model or type(objs[0])
    if db_connection.vendor not in ("postgresql", "sqlite"):
        queryset = model.objects.filter(status__in=only_statuses) if only_statuses else model.objects.all()
        if not isinstance(objs[0], model):
            objs = [model(pk=obj.pk, **{name: getattr(obj, name) for name in fields}) for obj in objs]
        queryset.bulk_update(objs, fields, batch_size=500)
        return
    quote = db_connection.ops.quote_name
    pk = model._meta.pk
    columns = [model._meta.get_field(name) for name in fields]
    names = ", ".join(quote(name) for name in ["pk", *(column.column for column in columns)])
    assignments = ", ".join(f"{quote(column.column)} = v.{quote(column.column)}" for column in columns)
    table = quote(model._meta.db_table)
    condition = f"t.{quote(pk.column)} = v.{quote('pk')}"
    status_params: list = []
    if only_statuses:
        condition += f" AND t.{quote('status')} IN ({', '.join(['%s'] * len(only_statuses))})"
        status_params = list(only_statuses)
    postgres = db_connection.vendor == "postgresql"
    if postgres:
        arrays = ", ".join(f"%s::{field.db_type(db_connection)}[]" for field in [pk, *columns])
        source = f"unnest({arrays}) AS v ({names})"
    for start in range(0, len(objs), BULK_ROWS):
        batch = objs[start : start + BULK_ROWS]
        rows = [
            [obj.pk, *(column.get_db_prep_save(getattr(obj, column.attname), db_connection) for column in columns)]
            for obj in batch
        ]
        # Identifiers come from the model's metadata; every value is a bound parameter.
        if postgres:
            params = [list(values) for values in zip(*rows, strict=True)]
            sql = f"UPDATE {table} AS t SET {assignments} FROM {source} WHERE {condition}"  # noqa: S608
        else:
            row_sql = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
            params = [value for row in rows for value in row]
            sql = (
                f"WITH v ({names}) AS (VALUES {', '.join([row_sql] * len(batch))}) "  # noqa: S608
                f"UPDATE {table} AS t SET {assignments} FROM v WHERE {condition}"
            )
        with db_connection.cursor() as cursor:
            cursor.execute(sql, params + status_params)
