from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from onboarding.invitations import create_invitation, hash_key, revoke_invitation
from onboarding.links import reconnect_url
from onboarding.models import ClientBusiness, Contact, Invitation
from testsupport.staff import run_queued_jobs, sign_in
from tokens.models import AccessToken

pytestmark = pytest.mark.django_db


def test_the_key_is_stored_only_as_a_hash(client_business, system_user_config):
    invitation, key = create_invitation(client_business, system_user_config)
    raw = key.split(".")[0]
    assert invitation.key_hash == hash_key(raw)
    assert raw not in invitation.key_hash


def test_an_invitation_expires_after_the_configured_days(client_business, system_user_config, settings):
    settings.INVITATION_TTL_DAYS = 3
    with time_machine.travel("2026-11-23 12:00Z", tick=False):
        invitation, _ = create_invitation(client_business, system_user_config)
    assert invitation.expires_at == invitation.created_at + timedelta(days=3)


def test_the_invitation_page_explains_permissions_assets_and_token_type(client, invitation_key):
    page = client.get(f"/invite/{invitation_key}/").content.decode()
    assert "Connect Acme Bakery" in page
    assert "Create and manage ads and campaigns in the ad accounts you choose." in page
    assert "Facebook Pages" in page and "Ad accounts" in page
    assert "system user" in page
    assert "Continue with Facebook" in page
    assert "Help center" in page


def test_opening_the_link_records_the_first_opening_only(client, invitation_key):
    with time_machine.travel("2026-11-23 12:00Z", tick=False):
        client.get(f"/invite/{invitation_key}/")
    first = Invitation.objects.get().opened_at
    client.get(f"/invite/{invitation_key}/")
    assert Invitation.objects.get().opened_at == first


@pytest.mark.parametrize(
    "key",
    ["nonsense", "a" * 43 + "." + "b" * 43, "x" * 500],
)
def test_a_malformed_or_tampered_link_gets_the_not_valid_page(client, invitation_key, key):
    response = client.get(f"/invite/{key}/")
    assert response.status_code == 404
    assert "This link isn't valid" in response.content.decode()


def test_a_link_with_one_character_changed_is_not_valid(client, invitation_key):
    tampered = ("A" if invitation_key[0] != "A" else "B") + invitation_key[1:]
    assert client.get(f"/invite/{tampered}/").status_code == 404


def test_an_expired_link_gets_the_expired_page(client, invitation_key):
    with time_machine.travel(timezone.now() + timedelta(days=14, seconds=1)):
        response = client.get(f"/invite/{invitation_key}/")
    assert response.status_code == 410
    assert "This invitation has expired" in response.content.decode()
    assert Invitation.objects.get().opened_at is None


def test_a_revoked_link_gets_the_withdrawn_page(client, invitation_key):
    revoke_invitation(Invitation.objects.get())
    response = client.get(f"/invite/{invitation_key}/")
    assert response.status_code == 410
    assert "This invitation was withdrawn" in response.content.decode()


def test_a_used_link_gets_the_already_used_page(client, invitation_key):
    Invitation.objects.update(completed_at=timezone.now())
    response = client.get(f"/invite/{invitation_key}/")
    assert response.status_code == 410
    assert "already been used" in response.content.decode()


def test_continue_on_an_invitation_revoked_after_opening_is_refused(client, invitation_key):
    client.get(f"/invite/{invitation_key}/")
    invitation = Invitation.objects.get()
    revoke_invitation(invitation)
    response = client.post("/connect/start/", {"invitation": invitation.pk})
    assert response.status_code == 410


def test_the_invitation_email_has_the_link_in_text_and_html(client_business, contact, system_user_config):
    from onboarding.invitations import send_invitation_email

    invitation, key = create_invitation(client_business, system_user_config, contact=contact)
    send_invitation_email(invitation, key)
    message = mail.outbox[0]
    assert message.to == ["ada@acme.test"]
    assert message.subject == "Connect Acme Bakery to Tech Provider Portal"
    assert f"http://127.0.0.1:8000/invite/{key}/" in message.body
    assert f"http://127.0.0.1:8000/invite/{key}/" in message.alternatives[0][0]
    assert Invitation.objects.get().sent_at is not None


def test_the_admin_action_asks_for_a_configuration_then_emails_every_contact(
    client, client_business, contact, system_user_config
):
    Contact.objects.create(client=client_business, email="bo@acme.test")
    lonely = ClientBusiness.objects.create(name="No Contacts Ltd")
    admin = User.objects.create_superuser("staff", "staff@portal.test", "pw")
    sign_in(client, admin)
    url = "/admin/onboarding/clientbusiness/"
    chosen = {"action": "send_onboarding_invitation", "_selected_action": [client_business.pk, lonely.pk]}
    confirm = client.post(url, chosen)
    assert confirm.status_code == 200 and "Send invitations" in confirm.content.decode()
    assert mail.outbox == []

    response = client.post(url, chosen | {"apply": "1", "configuration": system_user_config.pk})
    assert mail.outbox == []  # the request only starts a job: no page waits on the mail server
    run_queued_jobs()
    response = client.get(response.url)
    assert sorted(message.to[0] for message in mail.outbox) == ["ada@acme.test", "bo@acme.test"]
    assert Invitation.objects.filter(sent_at__isnull=False, created_by=admin).count() == 2
    page = response.content.decode()
    assert "Acme Bakery: 2 invitation(s) sent." in page and "No Contacts Ltd: no contact to invite" in page


def test_the_admin_refuses_a_configuration_that_breaks_a_rule(client, db):
    sign_in(client, User.objects.create_superuser("staff", "staff@portal.test", "pw"))
    response = client.post(
        "/admin/onboarding/loginconfiguration/add/",
        {
            "name": "Bad",
            "config_id": "1",
            "token_type": "system_user",
            "variant": "standard",
            "permissions": ["email", "ads_read"],
            "token_expiry": "never",
        },
    )
    assert response.status_code == 200
    assert "only for user access tokens" in response.content.decode()


def test_reconnect_url_creates_a_reconnect_invitation_for_the_tokens_client_and_configuration(
    client, client_business, contact, system_user_config
):
    token = AccessToken.objects.create(
        client=client_business, configuration=system_user_config, kind="system_user", value="v", granted_by=contact
    )
    url = reconnect_url(token)
    assert url.startswith("http://127.0.0.1:8000/invite/")
    invitation = Invitation.objects.get()
    assert (invitation.mode, invitation.client, invitation.configuration) == (
        "reconnect",
        client_business,
        system_user_config,
    )
    assert invitation.email == "ada@acme.test"
    page = client.get(url.removeprefix("http://127.0.0.1:8000")).content.decode()
    assert "Reconnect Acme Bakery" in page


def test_staff_see_where_each_invitation_stands(client, client_business, system_user_config):
    invitation, _ = create_invitation(client_business, system_user_config)
    assert invitation.state_label() == "Created"
    invitation.sent_at = timezone.now()
    assert invitation.state_label() == "Sent"
    invitation.opened_at = timezone.now()
    assert invitation.state_label() == "Opened"
    assert invitation.state_label(now=invitation.expires_at) == "Expired"
    invitation.completed_at = timezone.now()
    assert invitation.state_label(now=invitation.expires_at) == "Completed"
    sign_in(client, User.objects.create_superuser("staff", "staff@portal.test", "pw"))
    assert "Created" in client.get("/admin/onboarding/invitation/").content.decode()


def test_saving_an_embedded_signup_configuration_without_sixty_day_expiry_warns_staff(client, db):
    sign_in(client, User.objects.create_superuser("staff", "staff@portal.test", "pw"))
    response = client.post(
        "/admin/onboarding/loginconfiguration/add/",
        {
            "name": "WhatsApp",
            "config_id": "42",
            "token_type": "system_user",
            "variant": "whatsapp_embedded_signup",
            "permissions": ["whatsapp_business_management", "whatsapp_business_messaging"],
            "asset_types": ["whatsapp_business_account"],
            "token_expiry": "never",
            "is_active": "on",
        },
        follow=True,
    )
    assert "Meta recommends a 60-day token expiry" in response.content.decode()


def test_no_invitation_is_made_for_an_offboarded_client(client_business, contact, system_user_config):
    from onboarding.invitations import InvitationRefused, send_invitations

    ClientBusiness.objects.filter(pk=client_business.pk).update(status="offboarded")
    client_business.refresh_from_db()
    with pytest.raises(InvitationRefused, match="Acme Bakery is offboarded"):
        create_invitation(client_business, system_user_config, contact=contact)
    batch = send_invitations([client_business], system_user_config)
    assert batch.sent == [] and "offboarded" in batch.refused[0][1]
    assert Invitation.objects.count() == 0 and mail.outbox == []


def test_staff_asking_to_invite_an_offboarded_client_read_why_and_nothing_is_sent(
    client, client_business, contact, system_user_config
):
    ClientBusiness.objects.filter(pk=client_business.pk).update(status="offboarded")
    sign_in(client, User.objects.create_superuser("staff", "staff@portal.test", "pw"))
    chosen = {"action": "send_onboarding_invitation", "_selected_action": [client_business.pk], "apply": "1",
              "configuration": system_user_config.pk}  # fmt: skip
    page = client.post("/admin/onboarding/clientbusiness/", chosen, follow=True).content.decode()
    assert "Acme Bakery is offboarded" in page
    run_queued_jobs()
    assert Invitation.objects.count() == 0 and mail.outbox == []

    # The console's reconnect link and "send a reconnect link" say the same.
    for path in ("fresh-link", "reconnect"):
        response = client.post(f"/admin/onboarding/clientbusiness/{client_business.pk}/{path}/", follow=True)
        assert "Acme Bakery is offboarded" in response.content.decode(), path
    run_queued_jobs()
    assert Invitation.objects.count() == 0


def test_a_sent_invitation_cannot_be_edited_only_revoked(client, client_business, contact, system_user_config):
    from onboarding.invitations import send_invitation_email

    invitation, key = create_invitation(client_business, system_user_config, contact=contact)
    sign_in(client, User.objects.create_superuser("staff", "staff@portal.test", "pw"))
    url = f"/admin/onboarding/invitation/{invitation.pk}/change/"
    assert 'name="email"' in client.get(url).content.decode()  # not sent yet: still a draft
    send_invitation_email(invitation, key)
    page = client.get(url).content.decode()
    assert 'name="email"' not in page and 'name="expires_at_0"' not in page and "ada@acme.test" in page
    client.post(url, {"email": "mallory@evil.test", "mode": "onboard"})
    assert Invitation.objects.get().email == "ada@acme.test"
    client.post("/admin/onboarding/invitation/", {"action": "revoke", "_selected_action": [invitation.pk]})
    assert Invitation.objects.get().revoked_at is not None


def _link_keys(message) -> set[str]:
    import re

    html = message.alternatives[0][0]
    return set(re.findall(r"/invite/([^/\s\"]+)/", message.body)) | set(re.findall(r"/invite/([^/\s\"]+)/", html))


def test_a_reminder_batch_makes_each_emails_own_link_in_one_insert(client_business, contact, system_user_config):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from onboarding.invitations import resolve_invitation
    from testsupport.factories import make_client, make_contact, make_token
    from tokens.reminders import plan_reminders, send_due_reminders

    ClientBusiness.objects.filter(pk=client_business.pk).update(notification_emails="ops@acme.test")
    other = make_client(name="Bistro", notification_emails="")
    ends = timezone.now() + timedelta(days=2)
    for owner, grantor in ((client_business, contact), (other, make_contact(other, email="bo@bistro.test"))):
        make_token(owner, configuration=system_user_config, kind="system_user", granted_by=grantor, expires_at=ends)
    plan_reminders()

    with CaptureQueriesContext(connection) as queries:
        result = send_due_reminders()

    inserts = [q["sql"] for q in queries if q["sql"].startswith('INSERT INTO "onboarding_invitation"')]
    assert result.messages == 3 and len(inserts) == 1
    keys = []
    for message in mail.outbox:
        (key,) = _link_keys(message)  # the text and the HTML carry the same link
        invitation = resolve_invitation(key)
        assert (invitation.mode, invitation.email) == ("reconnect", invitation.contact.email)
        assert invitation.client.name in message.body
        keys.append(key)
    assert len(set(keys)) == 3 and Invitation.objects.count() == 3


def test_links_made_together_leave_out_an_offboarded_client_with_the_reason(client_business, system_user_config):
    from onboarding.invitations import InvitationRefused
    from onboarding.links import reconnect_urls
    from testsupport.factories import make_client, make_token

    gone = make_client(name="Gone Ltd", status="offboarded")
    live = make_token(client_business, configuration=system_user_config, kind="system_user")
    tokens = [make_token(gone, configuration=system_user_config, kind="system_user"), live, live]  # live: two emails

    refused, first, second = reconnect_urls(tokens)

    assert isinstance(refused, InvitationRefused) and "Gone Ltd is offboarded" in str(refused)
    assert first != second and Invitation.objects.filter(client=client_business).count() == 2
    assert not Invitation.objects.filter(client=gone).exists()
