"""A batch's reminder emails, each shape rendered once and its values filled in, are the emails rendered whole."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from testsupport.factories import make_asset, make_client, make_grant, make_token
from tokens.emails import reminder_email, reminder_renderer
from tokens.models import AccessToken, Asset, AssetGrant, Reminder
from tokens.reminders import _with_subjects, group_reminders

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stub_reconnect_links")]

ENDS = datetime(2026, 3, 9, 17, 45, tzinfo=UTC)
NAMES = [
    "Acme Bakery",
    'Tom & Jerry\'s <b>"Café"</b>',
    "  Bistro\n Nord\t ",  # whitespace the subject folds, the bodies keep
    "Zoë's Bäckerei & Söhne, seit 1892 — ünd mehr 😀",
]
# Which assets an email lists: none (the token's live grants, here none), one named, one without a
# name (its Meta id instead), several of different kinds, names to escape.
ASSETS = [
    [],
    [("Acme Page", Asset.Kind.PAGE)],
    [("", Asset.Kind.AD_ACCOUNT)],
    [("<script>alert('x')</script>", Asset.Kind.PAGE), ("", Asset.Kind.PIXEL), ("A & B", Asset.Kind.CATALOG)],
]


def varied_groups() -> list[list[Reminder]]:
    """Reminder emails of every reason, stage (before and after the end), token kind and asset list, each twice
    with different names (so twice the same shape)."""
    kinds = [AccessToken.Kind.USER, AccessToken.Kind.SYSTEM_USER]
    cases = itertools.product(Reminder.Reason.values, ["3d", "ended"], kinds, ASSETS, [ENDS, None], [0, 1])
    for n, (reason, stage, kind, assets, ends, again) in enumerate(cases):
        client = make_client(name=NAMES[(n // 2 + again) % len(NAMES)])
        token = make_token(client, kind=kind, expires_at=ends, missing_permissions=["ads_read", "pages_show_list"])
        grants = [make_grant(token, make_asset(client, name=name, kind=asset_kind)) for name, asset_kind in assets]
        common = {"client": client, "reason": reason, "stage": stage, "recipient_email": f"ops{n}@acme.test",
                  "ends_at": ends, "due_at": ENDS - timedelta(days=3)}  # fmt: skip
        if grants and reason == Reminder.Reason.ASSET_ACCESS_ENDING:
            for grant in grants:
                Reminder.objects.create(grant=grant, subject_key=f"grant:{grant.pk}", **common)
        else:
            if reason == Reminder.Reason.PERMISSION_REMOVED:  # the assets it made unreadable
                AssetGrant.objects.filter(token=token).update(status=AssetGrant.Status.PERMISSION_REMOVED)
            Reminder.objects.create(token=token, subject_key=f"token:{token.pk}", **common)
    reminders = _with_subjects(Reminder.objects.all()).prefetch_related("token__grants__asset").order_by("pk")
    return group_reminders(list(reminders))


def parts(email) -> tuple:
    return (email.subject, email.body, email.alternatives[0].content, email.to, email.extra_headers)


def test_every_email_of_a_batch_is_the_email_rendered_whole(monkeypatch):
    groups = varied_groups()
    assert len(groups) == 5 * 2 * 2 * len(ASSETS) * 2 * 2
    batch = reminder_renderer()
    filled = [parts(reminder_email(group, renderer=batch)) for group in groups]
    assert len(batch.shapes) == len(groups) / 2 and None not in batch.shapes.values()  # each shape filled in twice

    monkeypatch.setattr(type(batch), "_shape", lambda self, shape, values: None)  # every email rendered whole
    whole = [parts(reminder_email(group, renderer=reminder_renderer())) for group in groups]
    assert filled == whole
    # The values are there, escaped in HTML only.
    html = "\n".join(email[2] for email in filled)
    assert "Tom &amp; Jerry&#x27;s &lt;b&gt;&quot;Café&quot;&lt;/b&gt;" in html and "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    text = "\n".join(email[1] for email in filled)
    assert "Tom & Jerry's <b>\"Café\"</b>" in text and "<script>alert('x')</script>" in text
    assert any(email[0].startswith("Action needed: Bistro Nord 's connection") for email in filled)
    assert "9 March 2026, 17:45" in text and any("ends 9 Mar 2026" in email[0] for email in filled)


def test_the_dates_are_what_the_date_filter_gives_in_the_current_time_zone(settings):
    from django.template import engines
    from django.utils import timezone

    template = engines["django"].from_string('{{ ends|date:"j M Y" }}|{{ ends|date:"j F Y, H:i" }}')
    for zone in ("UTC", "Pacific/Kiritimati", "America/St_Johns"):
        with timezone.override(zone):
            renderer = reminder_renderer()
            for ends in (ENDS, ENDS + timedelta(hours=7, minutes=20), datetime(2026, 12, 31, 23, 59, tzinfo=UTC)):
                expected = template.render({"ends": ends})
                assert f"{renderer.date(ends, 'j M Y')}|{renderer.date(ends, 'j F Y, H:i')}" == expected
