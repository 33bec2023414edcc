"""Django's PostgreSQL backend, with a health check that needs no round trip while nothing happened (D92).

With ``CONN_HEALTH_CHECKS`` Django checks a kept connection before its first use in a request by
sending ``SELECT 1``: on the API that was one statement of three per request. A server that ends a
connection (a restart, ``pg_terminate_backend``, PgBouncer closing it) says so on the socket: it
sends its error and closes. So an idle connection whose socket has nothing to read is as usable
as ``SELECT 1`` would find it; when something is there, or the connection is not idle, Django's own
check decides.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base

IDLE = 0  # psycopg.pq.TransactionStatus.IDLE: no transaction open, nothing in flight


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        raw = self.connection
        if raw is None or raw.closed or raw.broken:
            return False
        try:
            if raw.info.transaction_status == IDLE and not select.select([raw.fileno()], [], [], 0)[0]:
                return True
        except (OSError, ValueError):  # the socket is gone
            return False
        return super().is_usable()
