"""Two real Celery workers sweep and send at once; every due reminder reaches a real SMTP server once.

Needs PostgreSQL (the workers share the test database) and Redis (the broker); skipped
locally without them, a failure in CI. Completion is awaited by polling the SMTP counter
and the database against a deadline, never by sleeping a fixed time.
"""

import asyncio
import email
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.utils import timezone

from testsupport.factories import make_client, make_contact, make_token
from tokens.models import AccessToken, Reminder, SweepRun
from tokens.reminders import plan_reminders
from tokens.tests.test_sweep_simulator import onboard

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 90

pytestmark = [pytest.mark.services, pytest.mark.slow]


class CountingHandler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reminder_ids: list[str] = []
        self.recipients: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content)
        with self.lock:
            self.reminder_ids.extend(message["X-Portal-Reminder"].split(","))
            self.recipients.extend(envelope.rcpt_tos)
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self.lock:
            return len(self.reminder_ids)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def start_workers(redis_url, postgres_required, transactional_db):
    processes = []
    queue = f"lifecycle-{uuid.uuid4().hex[:8]}"

    def start(count: int, env: dict[str, str], pool: str = "solo") -> str:
        database = connection.settings_dict
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
            "REDIS_URL": redis_url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            **env,
        }
        celery = str(Path(sys.executable).with_name("celery"))
        for n in range(count):
            processes.append(
                subprocess.Popen(
                    [
                        celery,
                        "-A",
                        "config",
                        "worker",
                        "-P",
                        pool,
                        "--concurrency=1",
                        "-Q",
                        queue,
                        "-n",
                        f"life{n}-{queue}@%h",
                        "--without-heartbeat",
                        "--without-gossip",
                        "--without-mingle",
                        "--loglevel=WARNING",
                    ],
                    cwd=ROOT,
                    env=full_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        return queue

    start.processes = processes
    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out waiting for {what}")
        time.sleep(0.2)  # polling interval, not a timing assumption


def test_two_workers_sweep_and_send_at_once_and_every_reminder_arrives_exactly_once(
    start_workers, smtp_server, simulated_meta
):
    from tokens import tasks

    controller, handler = smtp_server
    now = timezone.now()
    # Reminders due now: 30 tokens ending in 3 days, grantor + notification address each.
    for i in range(30):
        client = make_client(name=f"Client {i}", notification_emails=f"ops{i}@client.test")
        make_token(
            client,
            granted_by=make_contact(client, email=f"owner{i}@client.test"),
            expires_at=now + timedelta(days=3),
            next_check_at=now + timedelta(days=1),
        )
    plan_reminders()
    expected = set(map(str, Reminder.objects.values_list("pk", flat=True)))
    assert len(expected) == 60
    # Tokens due for a sweep, checked against the simulator by the same workers meanwhile.
    swept = [onboard(simulated_meta, make_client(name=f"Swept {i}", meta_business_id=None)) for i in range(4)]
    AccessToken.objects.filter(pk__in=[t.pk for t in swept]).update(next_check_at=now, last_checked_at=None)

    queue = start_workers(
        2,
        {
            "EMAIL_URL": f"smtp://{controller.hostname}:{controller.port}",
            "REMINDER_BATCH_SIZE": "7",
            "SWEEP_CHUNK_SIZE": "1",
            "META_GRAPH_URL": simulated_meta.graph_url,
            "PORTAL_BASE_URL": simulated_meta.base_url,
        },
    )
    tasks.start_health_sweep.apply_async(queue=queue)
    for _ in range(6):  # more senders than needed: they compete for the same rows
        tasks.send_reminders.apply_async(queue=queue)
        tasks.start_health_sweep.apply_async(queue=queue)

    wait_until(lambda: handler.count() >= len(expected), "every reminder at the SMTP server")
    wait_until(
        lambda: (
            not Reminder.objects.exclude(status="sent").exists()
            and not SweepRun.objects.filter(status="running").exists()
            and not AccessToken.objects.filter(pk__in=[t.pk for t in swept], last_checked_at=None).exists()
        ),
        "the database to record every send and the sweep to finish",
    )
    # One more sender after everything is sent: nothing is sent twice.
    tasks.send_reminders.apply_async(queue=queue).get(timeout=DEADLINE_SECONDS)

    delivered = Counter(handler.reminder_ids)
    assert set(delivered) == expected
    assert set(delivered.values()) == {1}
    assert sorted(handler.recipients) == sorted(Reminder.objects.values_list("recipient_email", flat=True))
    assert set(AccessToken.objects.filter(pk__in=[t.pk for t in swept]).values_list("status", flat=True)) == {"active"}


class StallingHandler(CountingHandler):
    """Accepts messages, but holds the reply to the Nth until released (the worker is killed meanwhile)."""

    def __init__(self, stall_at: int) -> None:
        super().__init__()
        self.stall_at = stall_at
        self.stalled = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        if self.count() == self.stall_at:
            self.stalled.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return reply


def test_a_worker_killed_mid_send_loses_only_that_message_attempt_which_is_retried(start_workers, postgres_required):
    from tokens import tasks

    handler = StallingHandler(stall_at=3)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        now = timezone.now()
        for i in range(4):
            client = make_client(name=f"Client {i}", notification_emails=f"ops{i}@client.test")
            make_token(client, expires_at=now + timedelta(days=3), next_check_at=now + timedelta(days=1))
        plan_reminders()
        expected = set(map(str, Reminder.objects.values_list("pk", flat=True)))
        env = {
            "EMAIL_URL": f"smtp://{controller.hostname}:{controller.port}",
            "REMINDER_LEASE_SECONDS": "2",
        }
        queue = start_workers(1, env)
        tasks.send_reminders.apply_async(queue=queue)
        wait_until(handler.stalled.is_set, "the third message to reach the SMTP server")
        os.killpg(start_workers.processes[0].pid, signal.SIGKILL)  # killed before recording the outcome
        start_workers.processes[0].wait(timeout=30)
        handler.release.set()
        in_flight = Reminder.objects.get(status="sending", send_started_at__isnull=False)
        assert Reminder.objects.filter(status="sending", send_started_at__isnull=True).count() == 1

        start_workers(1, env)

        def all_sent() -> bool:
            tasks.send_reminders.apply_async(queue=queue).get(timeout=DEADLINE_SECONDS)
            return not Reminder.objects.exclude(status="sent").exists()

        wait_until(all_sent, "the lease to run out and the rest to be sent")
    finally:
        controller.stop()

    delivered = Counter(handler.reminder_ids)
    assert set(delivered) == expected
    assert delivered[str(in_flight.pk)] == 2  # at-least-once at the in-doubt instant (decisions.md D9)
    assert {count for pk, count in delivered.items() if pk != str(in_flight.pk)} == {1}
    assert Reminder.objects.get(pk=in_flight.pk).attempts == 2
