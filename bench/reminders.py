"""Reminder sending: messages/s with 1, 2 and 4 senders to a local SMTP server; a sender killed; the server down and up.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench
    .venv/bin/python bench/reminders.py --reminders 10000 --senders 1 2 4
    .venv/bin/python bench/reminders.py --scenario kill --reminders 2000 --senders 2
    .venv/bin/python bench/reminders.py --scenario outage --reminders 2000 --senders 2 --down-seconds 20

Seeds N clients, each with one live token ending in 3 days and one notification address, and plans
their reminders (N due rows). The SMTP server runs in ``--smtp-processes`` processes of its own
sharing one port (SO_REUSEPORT), counting what it accepts per reminder id: ``testsupport/smtp_sink.py``
(a lean asyncio server, tested in ``testsupport/tests/test_smtp_sink.py``) or, with ``--smtp-server aiosmtpd``,
aiosmtpd (about four times its CPU per message). Each sender is a
process doing what a ``tokens.send_reminders`` task chain does (claim a batch, send it over one
connection, again while batches are full), so ``--senders`` is the number of Celery workers sending.

- ``throughput`` (default): wall time from the first claim to the last message, messages/s.
- ``kill``: SIGKILL one sender mid-batch (after ``--kill-after`` messages have arrived), then start
  a new sender with the same node name (as a restarted worker): seconds until every reminder is
  delivered, and how many arrived twice (the in-doubt message, D9).
- ``outage``: the SMTP server stops accepting connections after ``--kill-after`` messages for
  ``--down-seconds`` (real time), with REMINDER_OUTAGE_RETRY_BASE_SECONDS/CAP set by
  ``--outage-base``/``--outage-cap``: connection attempts made during the outage, seconds from the server
  coming back to the last message, duplicates, reminders given up.

Everything it seeds is deleted first: use a database of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import signal
import socket
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")


# ---------------------------------------------------------------------------------------------
# The SMTP server: processes of its own, one port


def _reuseport_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(512)
    return sock


def smtp_process(port: int, received, connections, ids_out, accepting, kind: str = "sink") -> None:
    """One SMTP server on a shared port (``sink``: testsupport.smtp_sink, or aiosmtpd); counts messages and connections.

    While ``accepting`` is 0 the listening socket is closed, so connections are refused (the
    kernel gives them to a process still listening, or refuses them when none is).
    """
    import logging

    from testsupport.smtp_sink import SinkProtocol, header

    seen: list[str] = []

    def accepted(content: bytes) -> None:
        seen.extend(header(content, b"X-Portal-Reminder").split(","))
        with received.get_lock():
            received.value += 1

    live: set = set()

    def counted(protocol_class):
        class Counting(protocol_class):
            def connection_made(self, transport):
                with connections.get_lock():
                    connections.value += 1
                live.add(transport)
                super().connection_made(transport)

            def connection_lost(self, error):
                live.discard(self.transport)
                super().connection_lost(error)

        return Counting

    if kind == "aiosmtpd":
        from aiosmtpd.smtp import SMTP

        logging.getLogger("mail.log").setLevel(logging.ERROR)

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                accepted(envelope.original_content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
                return "250 OK"

        server_class = counted(SMTP)

        def make_protocol():
            return server_class(Handler())
    else:
        server_class = counted(SinkProtocol)

        def make_protocol():
            return server_class(accepted)

    async def serve():
        loop = asyncio.get_running_loop()
        server = None
        while True:
            if accepting.value and server is None:
                server = await loop.create_server(make_protocol, sock=_reuseport_socket(port))
            elif not accepting.value and server is not None:
                server.close()  # refuse new connections, and drop the open ones (a crashed server)
                for transport in list(live):
                    transport.abort()
                await server.wait_closed()
                server = None
            if accepting.value == 2:  # stop: hand over what was seen
                break
            await asyncio.sleep(0.05)
        if server is not None:
            server.close()

    asyncio.run(serve())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    ids_out.send((seen, usage.ru_utime + usage.ru_stime))
    ids_out.close()


class SmtpServer:
    def __init__(self, processes: int, kind: str = "sink") -> None:
        context = multiprocessing.get_context("spawn")  # no Django, no inherited connections
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.received = context.Value("l", 0)
        self.connections = context.Value("l", 0)
        self.accepting = context.Value("i", 1)
        self.pipes, self.processes = [], []
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(
                target=smtp_process,
                args=(self.port, self.received, self.connections, child, self.accepting, kind),
                daemon=True,  # never outlives a benchmark that failed
            )
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)
        self.wait_listening()

    def wait_listening(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.recv(100)
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("The SMTP server did not start.")

    def down(self) -> None:
        self.accepting.value = 0

    def up(self) -> None:
        self.accepting.value = 1
        self.wait_listening()

    def stop(self) -> Counter:
        """Stop the server: what it received, per reminder id (``self.cpu_s``: the CPU it used)."""
        self.accepting.value = 2
        seen: Counter = Counter()
        self.cpu_s = 0.0
        for pipe in self.pipes:
            ids, cpu = pipe.recv()
            seen.update(ids)
            self.cpu_s += cpu
        for process in self.processes:
            process.join(timeout=30)
        seen.pop("", None)
        return seen


# ---------------------------------------------------------------------------------------------
# Seeding and sending


def seed(n: int) -> int:
    from django.apps import apps
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from tokens import crypto
    from tokens.models import AccessToken, MailOutage, Reminder, TokenEvent
    from tokens.reminders import plan_reminders

    ClientBusiness = apps.get_model("onboarding", "ClientBusiness")
    LoginConfiguration = apps.get_model("onboarding", "LoginConfiguration")
    Invitation = apps.get_model("onboarding", "Invitation")
    for model in (Reminder, TokenEvent, MailOutage, Invitation):
        model.objects.all().delete()
    AccessToken.objects.filter(parent__isnull=False).delete()
    AccessToken.objects.all().delete()
    ClientBusiness.objects.all().delete()
    LoginConfiguration.objects.filter(config_id="bench-reminders").delete()
    # The reminder links to a reconnect through the token's configuration.
    configuration = LoginConfiguration.objects.create(
        name="Bench reminders", config_id="bench-reminders", token_type="user", permissions=["pages_show_list"],
        asset_types=["page"],
    )
    now = timezone.now()
    for start in range(0, n, 2000):
        count = min(2000, n - start)
        clients = ClientBusiness.objects.bulk_create(
            [
                ClientBusiness(
                    name=f"Bench client {start + i}", status="active", notification_emails=f"ops{start + i}@bench.test"
                )
                for i in range(count)
            ]
        )
        AccessToken.objects.bulk_create(
            [
                AccessToken(
                    client=client,
                    configuration=configuration,
                    kind="user",
                    value=f"EAAB-bench-{client.pk}",
                    fingerprint=crypto.fingerprint(f"EAAB-bench-{client.pk}"),
                    meta_app_id=settings.META_APP_ID,
                    meta_user_id="bench",
                    expires_at=now + timedelta(days=3),
                    next_check_at=now + timedelta(days=1),
                )
                for client in clients
            ]
        )
    plan_reminders()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    return Reminder.objects.filter(status="pending").count()


def configure_mail(port: int) -> None:
    from django.conf import settings

    settings.EMAIL_BACKEND = "common.smtp.EmailBackend"  # what EMAIL_URL=smtp://... selects
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""


def sender(node: str, port: int, until_empty: bool, out=None) -> None:
    """A chain of ``send_reminders`` tasks in one process: batches while they are full."""
    from django.db import connections
    from django.utils import timezone

    from tokens.reminders import release_node_claims, send_due_reminders

    connections.close_all()
    configure_mail(port)
    release_node_claims(node, before=timezone.now())  # what tokens.tasks does when a worker node starts
    batches = 0
    while True:
        result = send_due_reminders(worker=node, task_id=f"bench-{os.getpid()}-{batches}")
        batches += 1
        if result.outage:
            time.sleep(0.2)  # beat's next dispatch, sooner: the gate says when it may try again
            continue
        if not result.claimed:
            if until_empty:
                break
            time.sleep(0.2)
    if out is not None:
        from django.db import connection

        backend = None
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend = cursor.fetchone()[0]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out.send((usage.ru_utime + usage.ru_stime, process_cpu_s(backend) if backend else 0.0))
        out.close()


def start_senders(count: int, port: int, until_empty: bool = True, prefix: str = "bench", pipes=None) -> list:
    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("fork")
    processes = []
    for i in range(count):
        out = None
        if pipes is not None:
            parent, out = context.Pipe()
            pipes.append(parent)
        processes.append(context.Process(target=sender, args=(f"{prefix}{i}@bench", port, until_empty, out)))
    for process in processes:
        process.start()
    return processes


def process_cpu_s(pid: int) -> float:
    """CPU seconds a process of this machine has used (here: the PostgreSQL backend serving a sender)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def wait_for(condition, timeout: float = 600) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise SystemExit("Timed out.")
        time.sleep(0.05)
    return time.monotonic() - started


def statuses() -> Counter:
    from tokens.models import Reminder

    return Counter(Reminder.objects.values_list("status", flat=True))


def throughput(args, senders: int) -> dict:
    due = seed(args.reminders)
    smtp = SmtpServer(args.smtp_processes, args.smtp_server)
    pipes: list = []
    busy = machine_busy_s()
    started = time.perf_counter()
    processes = start_senders(senders, smtp.port, pipes=pipes)
    reports = [pipe.recv() for pipe in pipes]
    sender_cpu, pg = sum(r[0] for r in reports), sum(r[1] for r in reports)
    for process in processes:
        process.join()
    wall = time.perf_counter() - started
    busy = machine_busy_s() - busy
    seen = smtp.stop()
    received = sum(seen.values())
    return {"senders": senders, "reminders": due, "received": received, "twice": sum(c > 1 for c in seen.values()),
            "wall_s": round(wall, 1), "per_s": round(received / wall), "statuses": dict(statuses()),
            # CPU per message, by who spent it (PostgreSQL: the backends serving the senders); "busy"
            # is every core of the machine, others' work included.
            "cpu_ms_per_message": {"senders": round(1000 * sender_cpu / received, 2),
                                   "smtp": round(1000 * smtp.cpu_s / received, 2),
                                   "postgres": round(1000 * pg / received, 2)},
            "machine_busy_cores": round(busy / wall, 2)}


def kill(args, senders: int) -> dict:
    due = seed(args.reminders)
    smtp = SmtpServer(args.smtp_processes, args.smtp_server)
    processes = start_senders(senders, smtp.port, until_empty=False)
    wait_for(lambda: smtp.received.value >= args.kill_after)
    from tokens.models import Reminder

    dead = f"bench0@bench:{processes[0].pid}:"
    os.kill(processes[0].pid, signal.SIGKILL)
    killed_at = time.monotonic()
    processes[0].join()
    held = Reminder.objects.filter(status="sending", claimed_by__startswith=dead).count()
    # The worker comes back under the same node name (its process manager restarts it), or
    # (--no-restart) the other senders find its claim when the lease runs out.
    replacement = start_senders(1, smtp.port, until_empty=False, prefix="bench")[0] if args.restart else None
    wait_for(lambda: not Reminder.objects.filter(status="sending", claimed_by__startswith=dead).exists())
    released = time.monotonic() - killed_at
    wait_for(lambda: not Reminder.objects.exclude(status="sent").exists())
    recovered = time.monotonic() - killed_at
    for process in [*processes[1:], *([replacement] if replacement else [])]:
        os.kill(process.pid, signal.SIGTERM)
        process.join()
    seen = smtp.stop()
    return {"senders": senders, "reminders": due, "received": sum(seen.values()),
            "twice": sum(c > 1 for c in seen.values()), "missing": due - len(seen),
            "held_by_the_dead_sender": held, "released_s": round(released, 2),
            "all_delivered_s": round(recovered, 1), "statuses": dict(statuses())}


def outage(args, senders: int) -> dict:
    from django.conf import settings

    from tokens.models import MailOutage, Reminder

    settings.REMINDER_OUTAGE_RETRY_BASE_SECONDS = args.outage_base
    settings.REMINDER_OUTAGE_RETRY_CAP_SECONDS = args.outage_cap
    due = seed(args.reminders)
    smtp = SmtpServer(args.smtp_processes, args.smtp_server)
    processes = start_senders(senders, smtp.port, until_empty=False)
    wait_for(lambda: smtp.received.value >= args.kill_after)
    smtp.down()
    time.sleep(args.down_seconds)  # the outage itself (a benchmark, not a test)
    gate = MailOutage.objects.filter(pk=1).first()
    tries = gate.failures if gate else 0  # connection attempts during the outage: one per gate opening
    at_up = smtp.received.value
    smtp.up()
    first = wait_for(lambda: smtp.received.value > at_up)  # the next probe after the server is back
    recovered = wait_for(lambda: not Reminder.objects.exclude(status="sent").exists()) + first
    for process in processes:
        os.kill(process.pid, signal.SIGTERM)
        process.join()
    seen = smtp.stop()
    return {"senders": senders, "reminders": due, "received": sum(seen.values()),
            "twice": sum(c > 1 for c in seen.values()), "missing": due - len(seen),
            "tries_during_outage": tries, "first_delivery_after_up_s": round(first, 1),
            "all_delivered_after_up_s": round(recovered, 1),
            "statuses": dict(statuses())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["throughput", "kill", "outage"], default="throughput")
    parser.add_argument("--reminders", type=int, default=10000)
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch", type=int, default=100, help="REMINDER_BATCH_SIZE")
    parser.add_argument("--smtp-processes", type=int, default=1,
                        help="the lean server needs one (0.2 CPU ms a message); aiosmtpd wants two")
    parser.add_argument("--smtp-server", choices=["sink", "aiosmtpd"], default="sink",
                        help="testsupport/smtp_sink.py (lean, asyncio) or aiosmtpd")
    parser.add_argument("--kill-after", type=int, default=500, help="messages delivered before the fault")
    parser.add_argument("--down-seconds", type=float, default=20.0)
    parser.add_argument("--restart", action=argparse.BooleanOptionalAction, default=True,
                        help="kill: the killed sender's node starts again (else the lease runs out)")
    parser.add_argument("--outage-base", type=int, default=2)
    parser.add_argument("--outage-cap", type=int, default=8)
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    settings.REMINDER_BATCH_SIZE = args.batch
    run = {"throughput": throughput, "kill": kill, "outage": outage}[args.scenario]
    for senders in args.senders:
        print(run(args, senders), flush=True)


if __name__ == "__main__":
    main()
