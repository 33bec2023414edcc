"""Whole-run leak check: record every URL sent, log line and served request line, then look for secrets.

``testsupport.pytest_leakcheck`` installs a ``LeakRecorder`` for the whole test session (and
points it at Django's test-server request handlers), and at the end asks it for leaks of the
app secret and of every token, code and secret the simulator issued. Plain Python, no Django,
so it can be tested without the session around it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote_plus, urlsplit

MIN_SECRET_LENGTH = 8  # shorter values would match innocent text by chance
_CONTEXT = 120


def mask(text: str, secret: str) -> str:
    return text.replace(secret, secret[:4] + "*" * 8)


def _describe(record: logging.LogRecord) -> str:
    try:
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            # The exception's message, not the traceback: tracebacks hold source lines, not
            # values, and formatting them for every DEBUG record would slow the run down.
            text += f"\n{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
    except Exception:  # a badly formatted record must not break the run
        text = f"{record.name}: {record.msg!r} {record.args!r}"
    return text


class LeakRecorder:
    """Remembers texts (deduplicated) by kind: "url", "log", "request line"."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], None] = {}
        self._root_level: int | None = None
        self._quieted: list[logging.Handler] = []

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
        """Start recording the URL of every request sent through ``requests`` or urllib3 and every log record.

        Returns the function that undoes it all.
        """
        undo: list[Callable[[], None]] = []

        # Every request of requests and of urllib3 alone (the Graph proxy's forwarded calls) is sent
        # through a connection pool's urlopen.
        import urllib3.connectionpool

        recorder = self

        pool_class = urllib3.connectionpool.HTTPConnectionPool
        original_urlopen = pool_class.urlopen

        def urlopen(pool, method, url, *args, **kwargs):
            recorder.record("url", f"{pool.scheme}://{pool.host}:{pool.port}{url}")
            return original_urlopen(pool, method, url, *args, **kwargs)

        pool_class.urlopen = urlopen  # type: ignore[method-assign]
        undo.append(lambda: setattr(pool_class, "urlopen", original_urlopen))

        # Every record any logger hands to its handlers passes here, whatever handlers and
        # propagation the run's logging configuration has (django.setup() may reconfigure it).
        original_call_handlers = logging.Logger.callHandlers

        def call_handlers(logger, record):
            recorder.record("log", _describe(record))
            return original_call_handlers(logger, record)

        logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]
        undo.append(lambda: setattr(logging.Logger, "callHandlers", original_call_handlers))
        self.hear_debug()
        undo.append(self._restore_levels)

        def uninstall() -> None:
            for step in reversed(undo):
                step()

        return uninstall

    def hear_debug(self) -> None:
        """Make DEBUG records be emitted (root at DEBUG) while the console shows what it did.

        Call again after anything reconfigures logging (the root conftest does, per test).
        """
        root = logging.getLogger()
        if root.level == logging.DEBUG:
            return
        if self._root_level is None:
            self._root_level = root.level
        for handler in root.handlers:
            if handler.level == logging.NOTSET:
                handler.setLevel(root.level or logging.WARNING)
                self._quieted.append(handler)
        root.setLevel(logging.DEBUG)

    def _restore_levels(self) -> None:
        for handler in self._quieted:
            handler.setLevel(logging.NOTSET)
        self._quieted.clear()
        if self._root_level is not None:
            logging.getLogger().setLevel(self._root_level)
            self._root_level = None

    def record_request_lines(self, cls: type, *, oauth_redirect_paths: Iterable[str] = ()) -> Callable[[], None]:
        """Record what a ``BaseHTTPRequestHandler`` subclass logs (its request lines); returns the undo.

        Meta sends the authorization ``code`` to the OAuth redirect URI in the query string:
        that is OAuth's design, not our leak, so on ``oauth_redirect_paths`` its value is
        left out. Codes anywhere else, and every token, are still looked for.
        """
        original = cls.__dict__["log_message"]
        recorder = self
        paths = tuple(oauth_redirect_paths)

        def log_message(handler, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
            try:
                line = format % args
            except (TypeError, ValueError):
                line = f"{format} {args!r}"
            recorder.record("request line", without_redirect_code(line, paths))
            return original(handler, format, *args)

        cls.log_message = log_message
        return lambda: setattr(cls, "log_message", original)


_REQUEST_TARGET = re.compile(r"^(?P<before>\S*\s*\"?[A-Z]+ )(?P<target>\S+)")
_CODE_PARAM = re.compile(r"(?<=[?&])code=[^&\s\"]*")


def without_redirect_code(line: str, redirect_paths: tuple[str, ...]) -> str:
    """The request line with the ``code`` parameter blanked when it targets an OAuth redirect URI."""
    match = _REQUEST_TARGET.match(line)
    if not match or not redirect_paths:
        return line
    target = match.group("target")
    if not urlsplit(target).path.startswith(redirect_paths):
        return line
    return line[: match.start("target")] + _CODE_PARAM.sub("code=[oauth-code]", target) + line[match.end("target") :]
