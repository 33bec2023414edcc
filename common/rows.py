"""Model instances from SQL written once per process, for the few queries on every API request (D90).

The ORM compiles a query anew on every call: for the token choice's five-table join that was most
of a millisecond of CPU, more than PostgreSQL spent answering it. ``Columns`` names the columns of
one model under a table alias, gives their SQL, and turns a result row's slice back into a model
instance through the same converters the ORM applies (so JSON, dates and times read as the ORM
reads them, on PostgreSQL and SQLite alike). Fields not named stay deferred, as with ``only()``.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager

from django.db import connection as default_connection
from django.db.models import DEFERRED, Model, signals
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute

PREPARE_AFTER = 2  # runs of a statement on a connection before psycopg prepares it


@contextmanager
def planned_once(connection=default_connection):
    """A cursor for statements run on every request: PostgreSQL plans each once per connection.

    Django's psycopg cursors bind parameters on the client, so PostgreSQL parses and plans every
    statement anew: for the token choice's five-table join that was 1.8 ms of the server's CPU
    against 0.2 ms prepared (D90). This cursor binds on the server, so psycopg prepares a statement
    once it has run ``PREPARE_AFTER`` times on the connection. It is Django's cursor
    otherwise (its error wrapping, query logging and time zone). Other databases: the usual cursor.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    import psycopg

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (None); it only ever applies to server-binding
        # cursors, which Django does not use: these are the only ones.
        raw.prepare_threshold = PREPARE_AFTER
    factory, raw.cursor_factory = raw.cursor_factory, psycopg.Cursor
    try:
        cursor = connection.cursor()
    finally:
        raw.cursor_factory = factory
    with cursor:
        yield cursor


class Columns:
    def __init__(self, alias: str, model, attnames=None, *, field_converters: bool = True):
        self.alias, self.model = alias, model
        # In the model's own order: Model.from_db() takes a subset of the fields only in that order.
        self.fields = [field for field in model._meta.concrete_fields if attnames is None or field.attname in attnames]
        missing = set(attnames or ()) - {field.attname for field in self.fields}
        if missing:
            raise ValueError(f"{model.__name__} has no columns {sorted(missing)}")
        self.attnames = [field.attname for field in self.fields]
        self.field_converters = field_converters
        self._converters: dict[str, list] = {}
        # Per concrete field of the model, its position among these columns (None: not selected):
        # Model.from_db() given a value for every field skips matching names to fields.
        position = {attname: index for index, attname in enumerate(self.attnames)}
        self._layout = [position.get(field.attname) for field in model._meta.concrete_fields]
        self._pk_position = self.attnames.index(model._meta.pk.attname) if model._meta.pk.attname in position else None
        self._built_directly = _can_build_directly(model, self.attnames)

    def __len__(self) -> int:
        return len(self.fields)

    def sql(self, connection=default_connection) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{quote(self.alias)}.{quote(field.column)}" for field in self.fields)

    def converters(self, connection) -> list:
        """The columns that have converters: (position, expression, the backend's converters then the
        field's), kept per database vendor."""
        found = self._converters.get(connection.vendor)
        if found is None:
            found = []
            for position, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                functions = connection.ops.get_db_converters(column)
                if self.field_converters:
                    functions = functions + column.get_db_converters(connection)
                if functions:
                    found.append((position, column, functions))
            self._converters[connection.vendor] = found
        return found

    def values(self, row, start: int, connection=default_connection) -> list:
        """This model's columns of ``row`` from position ``start``, converted."""
        values = list(row[start:start + len(self.fields)])
        for position, column, functions in self.converters(connection):
            value = values[position]
            for function in functions:
                value = function(value, column, connection)
            values[position] = value
        return values

    def primary_key(self, row, start: int):
        """The raw primary key of this slice of ``row`` (None for an outer join's miss), not converted."""
        return row[start + self._pk_position]

    def instance(self, row, start: int, connection=default_connection):
        """The model instance of this slice of ``row``; None when its primary key is NULL (an outer join's miss)."""
        if self.primary_key(row, start) is None:
            return None
        values = self.values(row, start, connection)
        if self._built_directly and not (signals.pre_init.receivers or signals.post_init.receivers):
            return _build(self.model, connection.alias, self.attnames, values)
        every_field = [DEFERRED if position is None else values[position] for position in self._layout]
        return self.model.from_db(connection.alias, self.attnames, every_field)


def _can_build_directly(model, attnames) -> bool:
    """Whether ``_build`` makes the instance ``model.from_db`` would: Django's own from_db (or one marked
    ``from_db_extension``), and plain attributes for the columns (no descriptor that
    does more on assignment than store the value, as a file field's does)."""
    from_db = getattr(model.from_db, "__func__", None)
    if not (from_db is Model.from_db.__func__ or getattr(from_db, "extends_with_after_from_db", False)):
        return False
    return all(type(inspect.getattr_static(model, attname, None)) in (DeferredAttribute, ForeignKeyDeferredAttribute)
               for attname in attnames)


def from_db_extension(function):
    """Marks a model's ``from_db`` override whose one addition to Django's is calling the instance's
    ``after_from_db()``: ``Columns`` then builds its rows directly and calls ``after_from_db()`` itself."""
    function.extends_with_after_from_db = True
    return function


def _build(model, alias: str, attnames, values):
    """``model.from_db(alias, ...)`` without ``Model.__init__``'s walk over every field and its two
    signals (checked to have no receivers): a third of the instance's cost, on every API request.
    Columns not given stay deferred, as ``from_db`` leaves them."""
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding, state.db = False, alias
    instance.__dict__.update(zip(attnames, values, strict=True))
    after = getattr(instance, "after_from_db", None)
    if after is not None:
        after()
    return instance


def select_list(groups, connection=default_connection) -> str:
    return ", ".join(group.sql(connection) for group in groups)


def split(row, groups, connection=default_connection, *, known: dict | None = None) -> list:
    """A row of ``select_list(groups)``: one instance (or None) per group, in order; a group made
    with ``field_converters=False`` gives its converted values instead.

    ``known``: instances already made from earlier rows, by group and primary key, reused rather
    than made again (the same asset or client on every row of a join); filled as it goes. Only
    within a group: another group of the same model may read other columns.
    """
    objects, position = [], 0
    for group in groups:
        if not group.field_converters:
            objects.append(group.values(row, position, connection))
        elif known is None:
            objects.append(group.instance(row, position, connection))
        else:
            key = (id(group), group.primary_key(row, position))
            if key not in known:
                known[key] = group.instance(row, position, connection)
            objects.append(known[key])
        position += len(group)
    return objects


_INSERTS: dict[tuple, str] = {}


def insert(model, values: dict, connection=default_connection) -> None:
    """INSERT one row of ``model`` (``values`` by attname), its SQL kept per model and columns: for rows
    written on every request, where the ORM's save() compiles anew and sends signals nobody listens to."""
    fields = [model._meta.get_field(name) for name in values]
    key = (connection.vendor, model, tuple(values))
    if key not in _INSERTS:
        quote = connection.ops.quote_name
        # Names from the model only; every value is a parameter.
        columns, placeholders = ", ".join(quote(f.column) for f in fields), ", ".join(["%s"] * len(fields))
        _INSERTS[key] = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values(), strict=True)]
    with planned_once(connection) as cursor:
        cursor.execute(_INSERTS[key], params)
