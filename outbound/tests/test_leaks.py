"""No token value and no endpoint secret in a delivery record, an event, an admin page, an email or a log."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.forms.models import model_to_dict
from django.urls import reverse

from outbound.models import Delivery, Event, WebhookEndpoint
from testsupport.factories import make_client, make_configuration
from testsupport.fake_graph import FakeToken
from tokens.install import GrantedAsset, install_token
from tokens.models import AccessToken

from .conftest import deliver_all

pytestmark = pytest.mark.django_db

TOKEN_VALUE = "EAAB-a-token-value-that-must-stay-inside-0001"


def test_secrets_stay_out_of_records_pages_emails_and_logs(admin_client, receiver, endpoint, caplog, settings):
    caplog.set_level(logging.DEBUG)
    settings.OUTBOUND_DISABLE_AFTER_DAYS = 1
    secret = receiver.secret
    token = install_token(
        client=make_client(), configuration=make_configuration(), kind=AccessToken.Kind.USER, value=TOKEN_VALUE,
        info=FakeToken().info(), assets=[GrantedAsset("page", "2001", "Page A")],
    ).token  # fmt: skip
    receiver.default = 500
    with time_machine.travel(token.created_at, tick=False) as clock:
        deliver_all()
        while WebhookEndpoint.objects.get(pk=endpoint.pk).is_active:  # until disabled, staff emailed
            clock.move_to(Delivery.objects.get().next_attempt_at)
            deliver_all()
        clock.shift(timedelta(minutes=1))
    assert len(mail.outbox) == 1 and len(receiver.received) > 3

    event, row = Event.objects.get(), Delivery.objects.get()
    endpoint.refresh_from_db()
    records = [str(model_to_dict(row)), str(event.data), str(event.envelope())]
    records.append(str({k: v for k, v in model_to_dict(endpoint).items() if k not in ("secret", "previous_secret")}))
    pages = [
        admin_client.get(url).content.decode()
        for url in (
            reverse("admin:outbound_webhookendpoint_changelist"),
            reverse("admin:outbound_webhookendpoint_change", args=[endpoint.pk]),
            reverse("admin:outbound_delivery_changelist"),
            reverse("admin:outbound_delivery_change", args=[row.pk]),
            reverse("admin:outbound_event_changelist"),
            reverse("admin:outbound_event_change", args=[event.pk]),
        )
    ]
    assert "connection.created" in pages[-1] and event.event_id in pages[2]
    message = mail.outbox[0]
    emails = [message.subject, message.body, *(content for content, _ in message.alternatives)]
    logs = [record.getMessage() for record in caplog.records]
    sent = [item.body.decode() + str(item.headers) for item in receiver.received]

    for text in records + pages + emails + logs:
        assert secret not in text and TOKEN_VALUE not in text
    assert all(TOKEN_VALUE not in text for text in sent)  # the receiver gets ids, never the value
