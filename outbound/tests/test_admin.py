"""Staff register endpoints (the secret shown once), read deliveries, redeliver; no secret on any page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from outbound import delivery, outbox
from outbound.models import Delivery, EventType, WebhookEndpoint
from testsupport.staff import sign_in

from .conftest import deliver_all, make_endpoint

pytestmark = pytest.mark.django_db

ADD = "/admin/outbound/webhookendpoint/add/"


def register(admin_client, **fields):
    form = {"name": "Publisher", "url": "https://hooks.provider.test/portal", "event_types": EventType.values}
    return admin_client.post(ADD, form | fields)


def shown_secret(response) -> str:
    return re.search(r'value="(whsec_[^"]+)"', response.content.decode()).group(1)


def test_registering_an_endpoint_shows_its_secret_once_and_never_again(admin_client):
    response = register(admin_client)

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    secret = shown_secret(response)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == secret and len(secret) > 40
    assert (endpoint.url, endpoint.event_types, endpoint.is_active) == (
        "https://hooks.provider.test/portal", EventType.values, True
    )
    pages = [
        admin_client.get(reverse("admin:outbound_webhookendpoint_change", args=[endpoint.pk])),
        admin_client.get(reverse("admin:outbound_webhookendpoint_changelist")),
    ]
    for page in pages:
        assert page.status_code == 200
        assert secret not in page.content.decode() and "whsec_" not in page.content.decode()
    assert "shown only when it was created" in pages[0].content.decode()
    assert secret not in str(admin_client.session.items()) and secret not in str(admin_client.cookies)


@pytest.mark.parametrize(
    "url, error",
    [
        ("ftp://hooks.provider.test/", "must start with"),
        ("https://user:pass@hooks.provider.test/", "no user name or password"),
        ("https://hooks.provider.test/#part", "fragment"),
        ("not a url", "Enter a valid URL"),
    ],
)
def test_a_bad_url_is_refused_with_a_reason_and_nothing_is_stored(admin_client, url, error):
    response = register(admin_client, url=url)

    assert response.status_code == 200 and error in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_plain_http_is_refused_where_https_is_required(admin_client, settings):
    settings.OUTBOUND_REQUIRE_HTTPS = True

    response = register(admin_client, url="http://hooks.provider.test/portal")

    assert "must start with https://" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_an_endpoint_needs_at_least_one_event_type(admin_client):
    response = register(admin_client, event_types=[])

    assert "This field is required" in response.content.decode() and not WebhookEndpoint.objects.exists()


def test_rotating_shows_the_new_secret_once_and_the_old_one_signs_alongside_for_a_while(admin_client, receiver):
    endpoint, old = make_endpoint(receiver.url)
    changelist = reverse("admin:outbound_webhookendpoint_changelist")

    response = admin_client.post(changelist, {"action": "rotate_secret", "_selected_action": [endpoint.pk]})

    new = shown_secret(response)
    endpoint.refresh_from_db()
    assert new != old and endpoint.secret == new and endpoint.previous_secret == old
    outbox.record([outbox.NewEvent(EventType.CONNECTION_BROKEN, "k", {})])
    receiver.secret = old  # a receiver not switched over yet still verifies
    assert deliver_all() == [delivery.DELIVERED]
    assert receiver.received[0].headers["Portal-Signature"].count("v1=") == 2
    assert old not in admin_client.get(changelist).content.decode()


def test_redeliver_from_the_deliveries_list(admin_client, receiver, endpoint):
    outbox.record([outbox.NewEvent(EventType.CONNECTION_BROKEN, "k", {})])
    deliver_all()
    row = Delivery.objects.get()

    response = admin_client.post(
        reverse("admin:outbound_delivery_changelist"), {"action": "redeliver", "_selected_action": [row.pk]},
        follow=True,
    )  # fmt: skip

    assert "1 delivery(ies) queued again." in response.content.decode()
    assert deliver_all() == [delivery.DELIVERED]
    assert receiver.delivered() == {row.event.event_id: 2}


def test_enable_again_clears_a_disabling(admin_client, receiver, endpoint):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=False, disabled_reason="failing", failing_since="2026-01-01T00:00Z"
    )

    admin_client.post(
        reverse("admin:outbound_webhookendpoint_changelist"),
        {"action": "enable_again", "_selected_action": [endpoint.pk]},
    )

    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.failing_since, endpoint.disabled_reason) == (True, None, "")


def test_staff_without_the_change_permission_cannot_redeliver(client, django_user_model, receiver, endpoint):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    sign_in(client, viewer)  # both factors, as every admin page needs
    outbox.record([outbox.NewEvent(EventType.CONNECTION_BROKEN, "k", {})])

    page = client.get(reverse("admin:outbound_delivery_changelist"))
    assert page.status_code == 200 and 'value="redeliver"' not in page.content.decode()


def test_the_key_rotation_re_encrypts_signing_secrets_and_the_check_counts_them(receiver, settings, capsys):
    from django.core.management import call_command
    from django.test import override_settings

    endpoint, secret = make_endpoint(receiver.url)
    new_key = "a-new-field-encryption-key-for-the-test-0123456789"

    call_command("rotate_field_encryption_key", old_key=settings.FIELD_ENCRYPTION_KEY, new_key=new_key)

    with override_settings(FIELD_ENCRYPTION_KEY=new_key):
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == secret
        call_command("check_token_encryption")
    out = capsys.readouterr().out
    assert "1 stored outbound.WebhookEndpoint.secret: 1 under the current key" in out and secret not in out
