"""Sending an email from its three templates: ``emails/<name>_subject.txt``, ``<name>.txt``, ``<name>.html``."""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.defaultfilters import date as date_filter
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import conditional_escape
from django.utils.timezone import get_current_timezone, template_localtime

logger = logging.getLogger(__name__)


def templated_email(
    name: str,
    context: dict,
    to: list[str],
    *,
    connection=None,
    headers: dict | None = None,
    language: str | None = None,
) -> EmailMultiAlternatives:
    """Render one message (plain text with an HTML alternative), ready to send.

    Rendered in ``language`` (default LANGUAGE_CODE), whatever language a request or task had active.
    """
    with translation.override(language or settings.LANGUAGE_CODE):
        subject = " ".join(render_to_string(f"emails/{name}_subject.txt", context).split())
        text = render_to_string(f"emails/{name}.txt", context)
        html = render_to_string(f"emails/{name}.html", context)
    return _message(subject, text, html, to, connection=connection, headers=headers)


def _message(subject: str, text: str, html: str, to: list[str], *, connection, headers) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
        connection=connection,
        headers=headers,
    )
    message.attach_alternative(html, "text/html")
    return message


def send_templated_email(name: str, context: dict, to: list[str], **options) -> str:
    """Render and send one message (``templated_email``'s arguments); returns its subject."""
    message = templated_email(name, context, to, **options)
    message.send()
    return message.subject


# A value's marker in a shape's rendering: "&" shows whether the template escaped it ("&amp;") or not.
_MARKER = "\x00{}&\x00"
_MARKED = re.compile("\x00([0-9]+)(&|&amp;)\x00")


def _split(rendered: str) -> tuple[list[str], list[tuple[int, bool]]] | None:
    """A shape's rendering as its literal text and, between, which value goes there and whether escaped.

    None when a marker was changed in a way neither printing nor escaping explains (a filter took it
    apart): that shape can only be rendered whole.
    """
    pieces = _MARKED.split(rendered)
    literals = pieces[0::3]
    if any("\x00" in literal for literal in literals):
        return None
    return literals, [(int(index), amp != "&") for index, amp in zip(pieces[1::3], pieces[2::3], strict=True)]


def _fill(split: tuple[list[str], list[tuple[int, bool]]], values: list[str], escaped: list[str]) -> str:
    literals, slots = split
    out = [literals[0]]
    for (index, escape), literal in zip(slots, literals[1:], strict=True):
        out.append(escaped[index] if escape else values[index])
        out.append(literal)
    return "".join(out)


class TemplatedEmails:
    """``templated_email`` for many messages of one template: each shape rendered once, its values filled in.

    ``context(shape, values)`` builds the templates' context from ``shape`` (hashable: everything that
    decides which branches, loops and translations the templates take) and ``values`` (strings the
    templates only print: names, links, dates). A shape is rendered once with a marker in place of each
    value; a message of that shape is that rendering with its values where the markers were, escaped
    where the template escaped the marker (``conditional_escape``, as Django does), and the subject's
    whitespace folded after (as ``templated_email`` does). So the templates may print a value, escaped or
    not, inside ``blocktranslate`` or not, but never test or filter it: that belongs in the shape.

    Checked at run time, once per shape: it is rendered a second time with markers ten times as long,
    and its first message rendered whole; a shape whose markers a filter took apart, whose two renderings
    differ (a template measuring a value) or whose first message filled in differs from it rendered whole
    is rendered whole for every message (and logged). A value holding a NUL character is rendered whole.
    What no check at run time can see is a test on a value that the first message happens to pass as
    the markers do (``{% if name %}`` on a first name that is not empty): each template's tests, over
    varied values, prove that it only prints them (tokens/tests/test_reminder_emails.py for reminders).

    ``date`` formats a datetime as the ``date`` filter would in this renderer's language and the current
    time zone (memoised: one formatting per distinct value).
    """

    def __init__(self, name: str, context, *, language: str | None = None) -> None:
        self.name = name
        self.context = context
        self.language = language or settings.LANGUAGE_CODE
        self.shapes: dict = {}  # shape -> the three splits, or None: render whole
        self.dates: dict = {}

    def date(self, value, format_string: str) -> str:
        key = (value, format_string, get_current_timezone())
        if key not in self.dates:
            with translation.override(self.language):
                self.dates[key] = date_filter(template_localtime(value), format_string)
        return self.dates[key]

    def _render(self, context: dict) -> tuple[str, str, str]:
        with translation.override(self.language):
            return tuple(
                render_to_string(f"emails/{self.name}{suffix}", context) for suffix in ("_subject.txt", ".txt", ".html")
            )

    def _shape(self, shape, values: list[str]):
        markers = [_MARKER.format(index) for index in range(len(values))]
        splits = tuple(_split(part) for part in self._render(self.context(shape, markers)))
        # The same with markers ten times as long: a template that measures a value renders differently.
        longer = [_MARKER.format(f"{index:040d}") for index in range(len(values))]
        if (
            None in splits
            or splits != tuple(_split(part) for part in self._render(self.context(shape, longer)))
            or self._filled(splits, values) != self._render(self.context(shape, values))
        ):
            logger.warning("Email %s: a shape whose values cannot be filled in; rendered whole: %r", self.name, shape)
            return None
        return splits

    @staticmethod
    def _filled(splits, values: list[str]) -> tuple[str, str, str]:
        escaped = [conditional_escape(value) for value in values]
        return tuple(_fill(split, values, escaped) for split in splits)

    def email(self, shape, values: list[str], to: list[str], *, connection=None, headers=None):
        """``templated_email(self.name, self.context(shape, values), to, ...)``, from the shape's rendering."""
        if not all(type(value) is str and "\x00" not in value for value in values):
            splits = None
        elif shape in self.shapes:
            splits = self.shapes[shape]
        else:
            splits = self.shapes[shape] = self._shape(shape, values)
        if splits is None:
            subject, text, html = self._render(self.context(shape, values))
        else:
            subject, text, html = self._filled(splits, values)
        return _message(" ".join(subject.split()), text, html, to, connection=connection, headers=headers)
