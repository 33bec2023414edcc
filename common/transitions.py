"""Status fields whose changes follow an allowed-transitions table.

A model lists ``STATUS_TRANSITIONS = {old: {new, ...}}``; saving a row whose status
moved along an edge not in the table raises ``InvalidStatusTransition``. Used by
ClientBusiness, AccessToken and the verification records.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from common import rows


class InvalidStatusTransition(ValidationError):
    pass


class StatusTransitionsMixin(models.Model):
    STATUS_FIELD = "status"
    STATUS_TRANSITIONS: dict[str, set[str]] = {}

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        self.check_status_transition()
        super().save(*args, **kwargs)
        self._loaded_status = self.__dict__.get(self.STATUS_FIELD)

    @classmethod
    @rows.from_db_extension
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance.after_from_db()
        return instance

    def after_from_db(self) -> None:
        """What this from_db adds to Django's (common.rows calls it too when it builds rows itself).

        A status not loaded (deferred) is not fetched here: that would cost a query per instance, and
        when Django refreshes another deferred field it builds such an instance, whose fetched status
        it then copied over the one being changed. The transition check reads it when it needs it."""
        self._loaded_status = self.__dict__.get(self.STATUS_FIELD)

    def _status_before(self) -> str | None:
        """The status this row had when loaded; for a row loaded without it, the stored one (a query,
        only then); None for a row not saved yet."""
        current = getattr(self, "_loaded_status", None)
        if current is None and not self._state.adding and self.pk is not None:
            current = (type(self)._base_manager.using(self._state.db).filter(pk=self.pk)
                       .values_list(self.STATUS_FIELD, flat=True).first())
        return current

    def can_transition_to(self, new_status: str) -> bool:
        return self._allowed(self._status_before(), new_status)

    def _allowed(self, current: str | None, new_status: str) -> bool:
        return current is None or current == new_status or new_status in self.STATUS_TRANSITIONS.get(current, set())

    def check_status_transition(self) -> None:
        if self.STATUS_FIELD not in self.__dict__:
            return  # neither loaded nor set: Django's save() writes only loaded fields, so not this one
        new_status = self.__dict__[self.STATUS_FIELD]
        current = self._status_before()
        if not self._allowed(current, new_status):
            label = self._meta.verbose_name
            raise InvalidStatusTransition(
                f"A {label} cannot go from “{current}” to “{new_status}”.",
                code="invalid_transition",
            )
