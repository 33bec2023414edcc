"""Emails sent by the token lifecycle. One function per email; templates under templates/emails/."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from common.emails import TemplatedEmails

from .links import reconnect_url, reconnect_urls
from .models import AccessToken, AssetGrant, Reminder

WHAT_STOPS = {
    Reminder.Reason.TOKEN_EXPIRING: _("the access you granted expires"),
    Reminder.Reason.DATA_ACCESS_EXPIRING: _(
        "our access to your data expires (Meta ends it 90 days after a person's "
        "last activity with the app)"
    ),
    Reminder.Reason.ASSET_ACCESS_ENDING: _(
        "the access granted from a personal Facebook account ends (your business "
        "moved to managed Meta accounts, and such grants don't carry over)"
    ),
    Reminder.Reason.TOKEN_INVALID: _("Meta no longer accepts the access you granted"),
    Reminder.Reason.PERMISSION_REMOVED: _(
        "a permission {portal} needs ({missing}) was removed from the access you "
        "granted, and Meta refuses what depends on it"
    ),
}
# The same, once it has happened (the "ended" stage).
WHAT_STOPPED = {
    Reminder.Reason.TOKEN_EXPIRING: _("the access you granted has expired"),
    Reminder.Reason.DATA_ACCESS_EXPIRING: _(
        "our access to your data has expired (Meta ends it 90 days after a "
        "person's last activity with the app)"
    ),
    Reminder.Reason.ASSET_ACCESS_ENDING: _(
        "the access granted from a personal Facebook account has ended (your "
        "business moved to managed Meta accounts, and such grants don't carry over)"
    ),
    Reminder.Reason.TOKEN_INVALID: _("Meta no longer accepts the access you granted"),
    Reminder.Reason.PERMISSION_REMOVED: _(
        "a permission {portal} needs ({missing}) was removed from the access you "
        "granted, and Meta refuses what depends on it"
    ),
}


def reminder_assets(reminders: list[Reminder]) -> list:
    """The assets a reminder email is about: the grants' assets, or every live asset of the token."""
    if reminders[0].grant_id:
        return [reminder.grant.asset for reminder in reminders]
    if reminders[0].reason == Reminder.Reason.PERMISSION_REMOVED:
        # What the removed permission made unreadable; the rest keeps working.
        live = (AssetGrant.Status.PERMISSION_REMOVED,)
    else:
        live = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING)
    return [grant.asset for grant in reminders[0].token.grants.all() if grant.status in live]


def _message_id(reminders: list[Reminder]) -> str:
    # Stable per reminder: if a send is ever retried after an in-doubt instant, mail clients
    # that de-duplicate by Message-ID show it once.
    host = urlsplit(settings.PORTAL_BASE_URL).hostname or "localhost"
    return f"<reminder.{'.'.join(str(r.pk) for r in reminders)}.{reminders[0].stage}@{host}>"


def send_reminder_email(reminders: list[Reminder], *, connection=None) -> None:
    """Render and send ``reminder_email``."""
    reminder_email(reminders, connection=connection).send()


def reminder_token(reminders: list[Reminder]) -> AccessToken:
    """The token whose reconnect link an email about these reminders carries."""
    reminder = reminders[0]
    return reminder.token if reminder.token_id else reminder.grant.token


def reminder_links(groups: list[list[Reminder]]) -> list:
    """One new reconnect link per email (``groups``: tokens.reminders.group_reminders), stored in one INSERT.

    An item that could not be made (an offboarded client) is the exception that says why:
    ``reminder_email`` raises it for that email only.
    """
    return reconnect_urls([reminder_token(group) for group in groups])


def reminder_renderer(language: str | None = None) -> TemplatedEmails:
    """What renders a batch's reminder emails: each shape once, its values filled in (common.emails, D94)."""
    return TemplatedEmails("reminder", _reminder_context, language=language)


def _reminder_context(shape: tuple, values: list[str]) -> dict:
    """The reminder templates' context from a shape (``_reminder_shape``) and the values they print.

    ``values``: the client's name, what stops, the reconnect link, the end's date and date with time,
    then each asset's kind and name (its Meta id when it has none).
    """
    reason, ended, has_end, is_user_token, assets = shape
    client, what_stops, link, ends_date, ends_datetime, *labels = values
    return {
        "client": {"name": client},
        "assets": [
            {"get_kind_display": kind, "name": label if named else "", "meta_id": label}
            for kind, label, named in zip(labels[0::2], labels[1::2], assets, strict=True)
        ],
        "ended": ended,
        "has_end": has_end,
        "ends_date": ends_date,
        "ends_datetime": ends_datetime,
        "what_stops": what_stops,
        "is_permission": reason == Reminder.Reason.PERMISSION_REMOVED,
        "is_asset": reason == Reminder.Reason.ASSET_ACCESS_ENDING,
        "is_user_token": is_user_token,
        "reconnect_url": link,
        "PORTAL_NAME": settings.PORTAL_NAME,
        "SUPPORT_EMAIL": settings.SUPPORT_EMAIL,
        "HELP_CENTER_URL": settings.HELP_CENTER_URL,
    }


def reminder_email(
    reminders: list[Reminder],
    *,
    connection=None,
    link: str | Exception | None = None,
    renderer: TemplatedEmails | None = None,
):
    """One email for reminders of one recipient, token, reason and stage (tokens.reminders.group_reminders).

    ``link`` is its reconnect link made beforehand (``reminder_links``); without one, rendering
    makes it (a new invitation row). ``renderer``: a batch's ``reminder_renderer()`` (else one of its own).
    """
    if isinstance(link, Exception):
        raise link
    renderer = renderer or reminder_renderer()
    reminder = reminders[0]
    token = reminder_token(reminders)
    assets = reminder_assets(reminders)
    ends = [r.ends_at for r in reminders if r.ends_at]
    ends_at = min(ends) if ends else None
    ended = reminder.stage == "ended"
    what_stops = (
        (WHAT_STOPPED if ended else WHAT_STOPS)
        .get(reminder.reason, _("access ends"))
        .format(portal=settings.PORTAL_NAME, missing=", ".join(token.missing_permissions))
    )
    shape = (reminder.reason, ended, ends_at is not None, token.kind == AccessToken.Kind.USER,
             tuple(bool(asset.name) for asset in assets))  # fmt: skip
    values = [
        reminder.client.name,
        what_stops,
        link or reconnect_url(token),
        renderer.date(ends_at, "j M Y") if ends_at else "",
        renderer.date(ends_at, "j F Y, H:i") if ends_at else "",
    ]
    with translation.override(renderer.language):  # the kind's label as the template would have said it
        for asset in assets:
            values += [str(asset.get_kind_display()), asset.name or asset.meta_id]
    pks = ",".join(str(r.pk) for r in reminders)
    return renderer.email(
        shape,
        values,
        [reminder.recipient_email],
        connection=connection,
        headers={"Message-ID": _message_id(reminders), "X-Portal-Reminder": pks},
    )
