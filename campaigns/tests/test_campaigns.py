"""Reconnect campaigns: who each filter selects, one single-use link per recipient, the page's figures as
people act, reminders only to those who haven't acted, closing; staff start and follow them in the console."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from campaigns import selection, service
from campaigns.models import Campaign, Recipient
from console.roles import OPERATOR, VIEWER
from onboarding.models import ClientBusiness, Invitation, LoginAttempt
from staffjobs.models import StaffJob
from testsupport.factories import make_asset, make_client, make_configuration, make_contact, make_grant, make_token
from testsupport.staff import make_staff, run_queued_jobs, sign_in
from tokens.models import AccessToken

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def pairs(targets) -> set[tuple[str, int]]:
    return {(ClientBusiness.objects.get(pk=t.client_id).name, t.configuration_id) for t in targets}


def link_key(message) -> str:
    return next(line for line in message.body.splitlines() if "/invite/" in line).split("/invite/")[1].strip("/")


def start(**fields):
    fields = {"name": "Renew before the holidays", "kind": Campaign.Kind.RECONNECT,
              "selection": Campaign.Selection.INVALID_TOKENS, "params": {},
              "message": "Please reconnect before 20 December.", **fields}  # fmt: skip
    return service.create_campaign(**fields)


@pytest.fixture
def config():
    return make_configuration("user", name="Pages as a person")


def test_access_ending_within_n_days_selects_tokens_and_asset_grants_that_end_by_then(config):
    ends_soon = make_token(make_client("Soon"), configuration=config, expires_at=NOW + timedelta(days=5))
    make_token(make_client("Later"), configuration=config, expires_at=NOW + timedelta(days=60))
    grant_client = make_client("Grant ends")
    token = make_token(grant_client, configuration=config, expires_at=NOW + timedelta(days=60))
    make_grant(token, make_asset(grant_client), user_access_expire_time=NOW + timedelta(days=9))
    page = make_token(ends_soon.client, configuration=None, kind="page", parent=ends_soon)
    make_grant(page, make_asset(ends_soon.client), user_access_expire_time=NOW + timedelta(days=2))

    assert pairs(selection.access_ending(10)) == {("Soon", config.pk), ("Grant ends", config.pk)}
    assert pairs(selection.access_ending(3)) == {("Soon", config.pk)}


def test_invalid_tokens_selects_only_tokens_nobody_replaced(config):
    make_token(make_client("Broken"), configuration=config, status="invalid")
    make_token(make_client("Replaced"), configuration=config, status="superseded")
    make_token(make_client("Fine"), configuration=config)
    assert pairs(selection.invalid_tokens()) == {("Broken", config.pk)}


def test_every_client_of_a_configuration_with_a_live_or_broken_token(config):
    other = make_configuration("system_user")
    make_token(make_client("Live"), configuration=config)
    make_token(make_client("Broken"), configuration=config, status="invalid")
    make_token(make_client("Revoked"), configuration=config, status="revoked")
    make_token(make_client("Elsewhere"), configuration=other)
    assert pairs(selection.of_configuration(config.pk)) == {("Live", config.pk), ("Broken", config.pk)}


def test_user_token_clients_of_a_migrating_business_are_those_whose_personal_grants_now_end(config):
    migrating = make_client("Migrating", meta_business_id="9100000000000001")
    token = make_token(migrating, configuration=config)
    make_grant(token, make_asset(migrating), user_access_expire_time=NOW + timedelta(days=30))
    steady = make_client("Steady")
    make_grant(make_token(steady, configuration=config), make_asset(steady))
    system = make_client("System user")
    system_token = make_token(system, configuration=make_configuration("system_user"), kind="system_user")
    make_grant(system_token, make_asset(system), user_access_expire_time=NOW + timedelta(days=30))

    assert pairs(selection.migrating_business()) == {("Migrating", config.pk)}
    assert pairs(selection.migrating_business("9100000000000001")) == {("Migrating", config.pk)}
    assert pairs(selection.migrating_business("9100000000000099")) == set()


def test_each_recipient_gets_one_single_use_link_and_offboarded_clients_are_left_out_with_the_reason(
    client, config
):
    broken = make_client("Acme Bakery")
    make_token(broken, configuration=config, status="invalid")
    ana, bo = make_contact(broken, "ana@acme.test", name="Ana"), make_contact(broken, "bo@acme.test", name="Bo")
    make_contact(broken, "quiet@acme.test", receives_reminders=False)
    gone = make_client("Gone Ltd", status="offboarded")
    make_token(gone, configuration=config, status="invalid")
    make_contact(gone)

    started = start()
    assert any("Gone Ltd is offboarded" in sentence for sentence in started.skipped)
    assert mail.outbox == []  # the request only queues the sending
    run_queued_jobs()

    recipients = Recipient.objects.order_by("email")
    assert [(r.email, r.status) for r in recipients] == [("ana@acme.test", "sent"), ("bo@acme.test", "sent")]
    assert sorted(message.to[0] for message in mail.outbox) == [ana.email, bo.email]
    invitations = Invitation.objects.filter(mode="reconnect")
    assert invitations.count() == 2 and {i.pk for i in invitations} == {r.invitation_id for r in recipients}
    message = mail.outbox[0]
    assert "Please reconnect before 20 December." in message.body
    page = client.get(f"/invite/{link_key(message)}/").content.decode()
    assert "Please reconnect before 20 December." in page and "Reconnect Acme Bakery" in page
    assert Campaign.objects.get().status == "open"


def test_a_job_run_twice_sends_nothing_twice(config):
    make_contact(make_token(make_client(), configuration=config, status="invalid").client)
    start()
    (job,) = StaffJob.objects.all()
    run_queued_jobs()
    from campaigns.staff_jobs import send_campaign
    from staffjobs.jobs import JobContext

    send_campaign(JobContext(job), list(job.target_ids), campaign_id=job.params["campaign_id"])
    assert len(mail.outbox) == 1 and Invitation.objects.count() == 1


def test_sending_is_split_into_jobs_of_a_batch_each(config, settings):
    settings.CAMPAIGN_SEND_BATCH = 2
    for n in range(5):
        make_contact(make_token(make_client(f"Client {n}"), configuration=config, status="invalid").client)
    started = start()
    assert [job.items_total for job in started.jobs] == [2, 2, 1]
    run_queued_jobs()
    assert Recipient.objects.filter(status="sent").count() == 5 == len(mail.outbox)


def test_moving_to_a_system_user_opens_the_new_configuration_and_the_page_explains_why(client, config):
    system = make_configuration("system_user", name="Business system user", permissions=["pages_show_list"],
                                asset_types=["page"])  # fmt: skip
    acme = make_client("Acme Bakery")
    token = make_token(acme, configuration=config)
    make_grant(token, make_asset(acme), user_access_expire_time=NOW + timedelta(days=25))
    make_contact(acme, "ana@acme.test")
    already = make_client("Already system")
    already_token = make_token(already, configuration=system, kind="system_user")
    make_grant(already_token, make_asset(already), user_access_expire_time=NOW + timedelta(days=25))

    start(kind=Campaign.Kind.MOVE_TO_SYSTEM_USER, selection=Campaign.Selection.MIGRATING_BUSINESS,
          target_configuration=system)  # fmt: skip
    run_queued_jobs()

    invitation = Invitation.objects.get()
    assert (invitation.configuration, invitation.switching_from, invitation.client) == (system, config, acme)
    assert "system user" in mail.outbox[0].body
    page = client.get(f"/invite/{link_key(mail.outbox[0])}/").content.decode()
    assert "Why we ask for a new kind of connection" in page and "managed Meta accounts" in page


def test_a_move_campaign_needs_a_system_user_configuration(config):
    with pytest.raises(service.CampaignError, match="system-user configuration"):
        start(kind=Campaign.Kind.MOVE_TO_SYSTEM_USER, target_configuration=config)


def test_the_figures_follow_people_as_they_open_start_complete_and_fail(client, config):
    clients = {}
    for name in ("Opens", "Starts", "Completes", "Fails", "Silent"):
        clients[name] = make_client(name)
        make_contact(make_token(clients[name], configuration=config, status="invalid").client, f"{name}@x.test")
    start()
    run_queued_jobs()
    campaign = Campaign.objects.get()
    keys = {message.to[0].split("@")[0]: link_key(message) for message in mail.outbox}
    recipient = {r.client.name: r for r in Recipient.objects.select_related("client", "invitation")}

    for name in ("Opens", "Starts", "Completes", "Fails"):
        assert client.get(f"/invite/{keys[name]}/").status_code == 200
    for name in ("Starts", "Completes", "Fails"):
        client.post("/connect/start/", {"invitation": recipient[name].invitation_id})
    LoginAttempt.objects.filter(invitation=recipient["Fails"].invitation).update(outcome="failed")
    Invitation.objects.filter(pk=recipient["Completes"].invitation_id).update(completed_at=timezone.now())
    make_token(clients["Completes"], configuration=config)

    totals, rows = service.progress(campaign)
    assert (totals.recipients, totals.sent, totals.opened, totals.started, totals.completed, totals.failed,
            totals.still_broken) == (5, 5, 4, 3, 1, 1, 4)  # fmt: skip
    by_name = {row.name: row.counts for row in rows}
    assert (by_name["Completes"].completed, by_name["Completes"].still_broken) == (1, 0)
    assert (by_name["Silent"].opened, by_name["Silent"].still_broken) == (0, 1)


def test_remind_re_sends_only_to_those_who_have_not_acted_with_a_fresh_link(client, config):
    for name in ("Started", "Renewed", "Silent"):
        make_contact(make_token(make_client(name), configuration=config, status="invalid").client, f"{name}@x.test")
    start()
    run_queued_jobs()
    campaign = Campaign.objects.get()
    recipient = {r.client.name: r for r in Recipient.objects.select_related("client")}
    keys = {message.to[0].split("@")[0]: link_key(message) for message in mail.outbox}
    client.get(f"/invite/{keys['Started']}/")
    client.post("/connect/start/", {"invitation": recipient["Started"].invitation_id})
    client.get(f"/invite/{keys['Silent']}/")  # opened, nothing more: still hasn't acted
    make_token(recipient["Renewed"].client, configuration=config)  # reconnected some other way
    mail.outbox.clear()

    service.remind(campaign)
    run_queued_jobs()

    assert [message.to[0] for message in mail.outbox] == ["Silent@x.test"]
    assert "haven't seen it renewed" in mail.outbox[0].body
    silent = Recipient.objects.get(pk=recipient["Silent"].pk)
    assert silent.reminders_sent == 1 and silent.opened_at is not None  # the first link's opening is kept
    assert client.get(f"/invite/{keys['Silent']}/").status_code == 410  # the old link is withdrawn
    assert client.get(f"/invite/{link_key(mail.outbox[0])}/").status_code == 200
    totals, _ = service.progress(campaign)
    assert totals.opened == 2 and totals.recipients == 3


def test_a_closed_campaign_reminds_nobody(config):
    make_contact(make_token(make_client(), configuration=config, status="invalid").client)
    start()
    run_queued_jobs()
    campaign = Campaign.objects.get()
    assert service.close(campaign) and not service.close(campaign)
    campaign.refresh_from_db()
    with pytest.raises(service.CampaignError, match="closed"):
        service.remind(campaign)


def test_an_operator_starts_a_campaign_in_the_console_and_follows_it(client, config):
    acme = make_client("Acme Bakery")
    make_contact(make_token(acme, configuration=config, status="invalid").client, "ana@acme.test")
    sign_in(client, make_staff("olga", OPERATOR))

    first_screen = client.get("/admin/").content.decode()
    assert 'id="open-campaign"' in first_screen and "/admin/campaigns/campaign/add/" in first_screen
    assert client.get("/admin/campaigns/campaign/add/").status_code == 200
    response = client.post("/admin/campaigns/campaign/add/", {
        "name": "Broken tokens", "kind": "reconnect", "selection": "invalid_tokens", "days": "30",
        "message": "Reconnect, please."})  # fmt: skip
    campaign = Campaign.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{campaign.pk}/change/")
    page = client.get(response["Location"])
    assert page["Refresh"] == "3" and "Sending" in page.content.decode()  # the jobs are still queued
    run_queued_jobs()
    page = client.get(response["Location"]).content.decode()
    assert "Acme Bakery" in page and "Remind the 1 who haven" in page and 'id="campaign-totals"' in page

    assert client.post(f"/admin/campaigns/campaign/{campaign.pk}/remind/").status_code == 302
    run_queued_jobs()
    assert len(mail.outbox) == 2
    client.post(f"/admin/campaigns/campaign/{campaign.pk}/close/")
    assert Campaign.objects.get().status == "closed"
    assert "Close the campaign" not in client.get(response["Location"]).content.decode()


def test_a_viewer_reads_campaigns_but_starts_reminds_and_closes_none(client, config):
    make_contact(make_token(make_client(), configuration=config, status="invalid").client)
    start()
    campaign = Campaign.objects.get()
    sign_in(client, make_staff("vera", VIEWER))
    assert 'id="open-campaign"' not in client.get("/admin/").content.decode()
    assert client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").status_code == 200
    assert client.get("/admin/campaigns/campaign/add/").status_code == 403
    assert client.post(f"/admin/campaigns/campaign/{campaign.pk}/close/").status_code == 403
    assert client.post(f"/admin/campaigns/campaign/{campaign.pk}/remind/").status_code == 403
    assert Campaign.objects.get().status != "closed" and StaffJob.objects.filter(kind="campaigns.remind").count() == 0


def test_the_start_form_says_what_is_missing(client, config):
    sign_in(client, make_staff("olga", OPERATOR))
    page = client.post("/admin/campaigns/campaign/add/", {
        "name": "x", "kind": "move_to_system_user", "selection": "configuration", "message": "m"}).content.decode()
    assert "Choose the configuration whose clients to ask." in page
    assert "Choose the system-user configuration the links open." in page
    assert Campaign.objects.count() == 0


def test_tokens_other_than_the_campaign_s_pair_do_not_count_as_renewed(config):
    acme = make_client("Acme Bakery")
    make_contact(make_token(acme, configuration=config, status="invalid").client)
    start()
    make_token(acme, configuration=make_configuration("user"))  # another configuration's token
    totals, _ = service.progress(Campaign.objects.get())
    assert totals.still_broken == 1
    assert AccessToken.objects.filter(client=acme).count() == 2
