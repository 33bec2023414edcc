"""Reminders under faults with real processes: Celery workers on Redis, PostgreSQL, an aiosmtpd server.

- A sender's worker process SIGKILLed mid-batch (prefork: its parent requeues the task) and a
  whole worker SIGKILLed and restarted: everything is delivered within 2 minutes, with at most
  the one message in doubt delivered twice (decisions.md D9, D65).
- The mail server refusing connections for 2 hours (time moved with time-machine, in this
  process, against the real SMTP server): nothing is given up for the outage, the senders try a
  handful of times instead of once per reminder, every reminder still due goes out once after it
  comes back, the stage that passed meanwhile is "not delivered in time" and staff are told, and
  a client with nobody to tell is reported to staff (D66, D67).

Kills are deterministic: the SMTP server holds its reply to the Nth message until the test has
killed the sender that sent it. Completion is awaited by polling against a deadline.
"""

import email
import os
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.utils import timezone

from testsupport.factories import make_client, make_contact, make_token
from tokens import tasks
from tokens.models import MailOutage, Reminder
from tokens.reminders import plan_reminders
from tokens.tests.test_workers import StallingHandler, free_port, start_workers  # noqa: F401 (fixture)
from verification import tasks as verification_tasks

pytestmark = [pytest.mark.services, pytest.mark.slow]

RECOVERY_SECONDS = 120  # the promise: everything delivered within 2 minutes of a kill


def wait_until(condition, what: str, seconds: float = RECOVERY_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Not within {seconds} s: {what}")
        time.sleep(0.2)  # polling interval, not a timing assumption


def due_reminders(count: int) -> set[str]:
    now = timezone.now()
    for i in range(count):
        client = make_client(name=f"Client {i}", notification_emails=f"ops{i}@client.test")
        make_token(client, expires_at=now + timedelta(days=3), next_check_at=now + timedelta(days=1))
    plan_reminders()
    return set(map(str, Reminder.objects.values_list("pk", flat=True)))


def in_doubt() -> Reminder | None:
    return Reminder.objects.filter(status="sending", send_started_at__isnull=False).first()


@pytest.fixture
def stalling_server():
    handler = StallingHandler(stall_at=10)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    handler.release.set()
    controller.stop()


def assert_each_once_but_the_one_in_doubt(handler, expected: set[str], doubtful: Reminder) -> None:
    delivered = Counter(handler.reminder_ids)
    assert set(delivered) == expected
    assert delivered[str(doubtful.pk)] == 2  # at-least-once at the in-doubt instant (D9)
    assert {count for pk, count in delivered.items() if pk != str(doubtful.pk)} == {1}
    assert not Reminder.objects.exclude(status="sent").exists()


def test_a_sender_process_killed_mid_batch_is_redelivered_and_everything_arrives_in_two_minutes(
    start_workers, stalling_server  # noqa: F811
):
    controller, handler = stalling_server
    expected = due_reminders(30)
    # A lease far longer than the promise: only the redelivery can make it in time.
    env = {"EMAIL_URL": f"smtp://{controller.hostname}:{controller.port}", "REMINDER_LEASE_SECONDS": "3600"}
    queue = start_workers(1, env, pool="prefork")
    tasks.send_reminders.apply_async(queue=queue)
    wait_until(handler.stalled.is_set, "the tenth message to reach the SMTP server")
    doubtful = in_doubt()
    pid = int(doubtful.claimed_by.split(":")[1])  # the pool process sending it
    assert pid != start_workers.processes[0].pid

    os.kill(pid, signal.SIGKILL)  # after the server took the message, before the outcome is recorded
    handler.release.set()

    wait_until(lambda: not Reminder.objects.exclude(status="sent").exists(), "every reminder sent")
    assert_each_once_but_the_one_in_doubt(handler, expected, doubtful)
    assert Reminder.objects.get(pk=doubtful.pk).attempts == 2


def test_a_whole_worker_killed_mid_batch_gives_its_claim_back_when_it_starts_again(
    start_workers, stalling_server  # noqa: F811
):
    controller, handler = stalling_server
    expected = due_reminders(30)
    env = {"EMAIL_URL": f"smtp://{controller.hostname}:{controller.port}", "REMINDER_LEASE_SECONDS": "3600"}
    queue = start_workers(1, env)
    tasks.send_reminders.apply_async(queue=queue)
    wait_until(handler.stalled.is_set, "the tenth message to reach the SMTP server")
    doubtful = in_doubt()
    worker = start_workers.processes[0]

    os.killpg(worker.pid, signal.SIGKILL)  # the whole worker: its task stays unacked in Redis
    worker.wait(timeout=30)
    handler.release.set()
    assert Reminder.objects.filter(status="sending").count() == 30 - 9

    start_workers(1, env)  # its process manager starts it again, under the same node name
    tasks.dispatch_reminders.apply_async(queue=queue)  # beat's next minute

    wait_until(lambda: not Reminder.objects.exclude(status="sent").exists(), "every reminder sent")
    assert_each_once_but_the_one_in_doubt(handler, expected, doubtful)


# ---------------------------------------------------------------------------------------------
# Two hours without a mail server


class Recorder:
    """Reminders by id (their X-Portal-Reminder header) and staff alerts by subject."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reminders: Counter = Counter()
        self.alerts: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content)
        with self.lock:
            if message["X-Portal-Reminder"]:
                self.reminders.update(message["X-Portal-Reminder"].split(","))
            else:
                self.alerts.append(" ".join(str(message["Subject"]).split()))
        return "250 OK"


class RefusingPort:
    """An SMTP server on a fixed port that can be taken down (connections refused) and brought back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.recorder = Recorder()
        self.controller = None

    def up(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def mail_server(settings):
    server = RefusingPort()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 10
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield server
    server.down()


NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_two_hours_without_a_mail_server_every_reminder_still_due_goes_out_once_and_staff_hear_of_the_rest(
    mail_server, postgres_required, stub_reconnect_links, django_user_model, settings
):
    settings.REMINDER_STAGES_DAYS = [14, 7, 3, 1]
    django_user_model.objects.create_user("root", "root@provider.test", is_staff=True, is_superuser=True)
    # Its 3-day stage is due now; in two hours the 1-day stage supersedes it.
    soon = [make_token(make_client(name=f"Soon {i}", notification_emails=f"soon{i}@client.test"),
                       expires_at=NOW + timedelta(days=1, hours=1)) for i in range(3)]
    # Its 3-day stage is still the current one after the outage.
    later = [make_token(make_client(name=f"Later {i}", notification_emails=f"later{i}@client.test"),
                        expires_at=NOW + timedelta(days=2, hours=12)) for i in range(4)]
    lonely = make_client(name="Lonely", notification_emails="")
    make_token(lonely, granted_by=make_contact(lonely, receives_reminders=False), expires_at=NOW + timedelta(days=3))
    assert soon and later

    def beat(minute: int) -> None:
        """What beat runs at this minute (tasks called in this process, at the moved time)."""
        if minute % 15 == 0:
            plan_reminders()
        tasks.send_reminders()  # what dispatch_reminders queues when reminders are due
        if minute % 5 == 0:
            verification_tasks.check_reminder_alerts()

    with time_machine.travel(NOW, tick=False) as clock:
        for minute in range(0, 121):  # the server refuses every connection for two hours
            clock.move_to(NOW + timedelta(minutes=minute))
            beat(minute)
            assert not Reminder.objects.filter(status="failed").exists()
        tries = MailOutage.objects.get().failures
        waiting = set(Reminder.objects.filter(status="pending").values_list("pk", flat=True))

        mail_server.up()
        for minute in range(121, 140):
            clock.move_to(NOW + timedelta(minutes=minute))
            beat(minute)

    received = mail_server.recorder
    # A handful of connection attempts over two hours (the gate backs off to every 10 minutes),
    # where per-reminder retries made one per reminder each time.
    assert tries <= 20
    by_stage = dict(Counter(Reminder.objects.values_list("stage", "status")))
    assert by_stage == {("3d", "undelivered"): 3, ("1d", "sent"): 3, ("3d", "sent"): 4, ("3d", "nobody"): 1}
    assert set(received.reminders) == {str(pk) for pk in waiting}  # every reminder still due ...
    assert set(received.reminders.values()) == {1}  # ... once
    assert sorted(received.alerts) == [
        "3 reminders to clients could not be delivered",
        "Access is ending for 1 client connection with nobody to tell",
    ]
    assert MailOutage.objects.get().failures == 0


def test_many_due_reminders_are_sent_by_several_workers_at_once_each_exactly_once(
    start_workers, stalling_server  # noqa: F811
):
    controller, handler = stalling_server
    handler.stall_at = 0  # holds nothing
    expected = due_reminders(120)
    env = {
        "EMAIL_URL": f"smtp://{controller.hostname}:{controller.port}",
        "REMINDER_BATCH_SIZE": "10",
        "REMINDER_SENDERS": "3",
    }
    queue = start_workers(3, env)
    from config.celery import app

    def ready() -> int:
        return sum(queue in name for reply in app.control.ping(timeout=0.5) for name in reply)

    wait_until(lambda: ready() == 3, "the three workers to answer")
    tasks.dispatch_reminders.apply_async(queue=queue).get(timeout=RECOVERY_SECONDS)  # one beat

    wait_until(lambda: not Reminder.objects.exclude(status="sent").exists(), "every reminder sent")
    delivered = Counter(handler.reminder_ids)
    assert set(delivered) == expected and set(delivered.values()) == {1}
    nodes = {claim.split(":")[0] for claim in Reminder.objects.values_list("claimed_by", flat=True)}
    assert len(nodes) >= 2  # the batches were shared by the workers, not sent by one chain
