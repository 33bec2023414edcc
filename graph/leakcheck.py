"""Whole-run leak check: record every URL sent, log line and served request line, then look for secrets.

The root ``conftest.py`` installs a ``LeakRecorder`` for the whole test session (and points
it at Django's test-server request handlers), and at the end asks it for leaks of the app
secret and of every token, code and secret the simulator issued. Plain Python, no Django,
so it can be tested without the session around it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from urllib.parse import unquote_plus

MIN_SECRET_LENGTH = 8  # shorter values would match innocent text by chance
_CONTEXT = 120


def mask(text: str, secret: str) -> str:
    return text.replace(secret, secret[:4] + "*" * 8)


class _RecordingHandler(logging.Handler):
    def __init__(self, recorder: LeakRecorder) -> None:
        super().__init__(level=logging.DEBUG)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                # The exception's message, not the traceback: tracebacks hold source lines, not
                # values, and formatting them for every DEBUG record would slow the run down.
                text += f"\n{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        except Exception:  # a badly formatted record must not break the run
            text = f"{record.name}: {record.msg!r} {record.args!r}"
        self.recorder.record("log", text)


class LeakRecorder:
    """Remembers texts (deduplicated) by kind: "url", "log", "request line"."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], None] = {}

    def record(self, kind: str, text: str) -> None:
        self._entries[(kind, text)] = None

    def __len__(self) -> int:
        return len(self._entries)

    def find_leaks(self, secrets: Iterable[str]) -> list[str]:
        """One line per (secret, place) found, with the secret masked."""
        wanted = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        if not wanted or not self._entries:
            return []
        # Each text as recorded and URL-decoded, so "1234%7Csecret" is found as "1234|secret".
        texts = []
        for kind, text in self._entries:
            decoded = unquote_plus(text)
            texts.append((kind, text))
            if decoded != text:
                texts.append((kind, decoded))
        # One big haystack first: most secrets appear nowhere, and `in` on one string is fast.
        haystack = "\n".join(text for _, text in texts)
        leaks = []
        for secret in wanted:
            if secret not in haystack:
                continue
            for kind, text in texts:
                position = text.find(secret)
                if position < 0:
                    continue
                snippet = text[max(0, position - _CONTEXT) : position + len(secret) + _CONTEXT]
                leaks.append(f"{kind}: {mask(snippet, secret)}")
        return leaks

    def install(self) -> Callable[[], None]:
        """Start recording the URL of every request sent through ``requests`` and every log record.

        Returns the function that undoes it all.
        """
        undo: list[Callable[[], None]] = []

        import requests.adapters

        original_send = requests.adapters.HTTPAdapter.send
        recorder = self

        def send(adapter, request, *args, **kwargs):
            recorder.record("url", str(request.url))
            return original_send(adapter, request, *args, **kwargs)

        requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
        undo.append(lambda: setattr(requests.adapters.HTTPAdapter, "send", original_send))

        handler = _RecordingHandler(self)
        root = logging.getLogger()
        previous_level = root.level
        # Loggers that don't propagate would hide their records from a root handler.
        isolated = [
            logger
            for logger in logging.root.manager.loggerDict.values()
            if isinstance(logger, logging.Logger) and not logger.propagate
        ]
        quieted = [h for h in root.handlers if h.level == logging.NOTSET]
        for existing in quieted:  # the console keeps showing what it showed before
            existing.setLevel(previous_level)
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        for logger in isolated:
            logger.addHandler(handler)

        def restore_logging() -> None:
            root.removeHandler(handler)
            root.setLevel(previous_level)
            for existing in quieted:
                existing.setLevel(logging.NOTSET)
            for logger in isolated:
                logger.removeHandler(handler)

        undo.append(restore_logging)

        def uninstall() -> None:
            for step in reversed(undo):
                step()

        return uninstall

    def record_request_lines(self, cls: type) -> Callable[[], None]:
        """Record what a ``BaseHTTPRequestHandler`` subclass logs (its request lines); returns the undo."""
        original = cls.__dict__["log_message"]
        recorder = self

        def log_message(handler, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
            try:
                recorder.record("request line", format % args)
            except (TypeError, ValueError):
                recorder.record("request line", f"{format} {args!r}")
            return original(handler, format, *args)

        cls.log_message = log_message
        return lambda: setattr(cls, "log_message", original)
