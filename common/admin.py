"""Admin pieces shared by the apps."""

from __future__ import annotations


class ReadOnlyAdminMixin:
    """A record staff read but never add, change or delete from the admin (audit trails, counters)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
