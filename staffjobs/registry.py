"""Which function does the work of each kind of staff job.

Each app registers its handlers when it starts (its ``AppConfig.ready()`` imports its
``staff_jobs`` module), so this app knows no other app: a handler is a plain function
``handler(job: JobContext, target_ids: list[int], **params) -> None``.
"""

from __future__ import annotations

from collections.abc import Callable

HANDLERS: dict[str, Callable] = {}


def staff_job(kind: str) -> Callable[[Callable], Callable]:
    def register(handler: Callable) -> Callable:
        HANDLERS[kind] = handler
        return handler

    return register


def handler_for(kind: str) -> Callable | None:
    return HANDLERS.get(kind)
