"""Benchmark of the health sweep and of reminder sending against the local simulator (not a test).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/sweep.py --tokens 1000 10000

For each N: seeds N user tokens (each covering the same 6 assets of the simulator's Acme
Bakery: 2 Pages, 2 ad accounts, 2 businesses) in the simulator and in the portal, starts
the simulator in its own processes (gunicorn, ``--server-workers`` of them; or Django's
runserver with ``--server runserver``), then sweeps every token in chunks
(`start_sweep` + `check_tokens`, as the Celery tasks do) in ``--workers`` child processes
and reports wall time, tokens/s, Graph HTTP requests (counted by the simulator), database
queries (counted in the sweeping processes) and the growth of the sweeping processes' RSS to its peak. Then it
plans and sends reminders for ``--reminders`` tokens through a local SMTP server and
reports messages/s. Everything it seeds is deleted first: use a database of its own.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")

ACME, ALICE = "9100000000000001", "1000000000000001"
# Meta's budget is ~200 calls per daily active user per hour; the simulator defaults to
# 100,000 calls/hour. The benchmark measures our code, so Meta's budget is lifted.
SERVER = """
import os, sys, django
django.setup()
from django.conf import settings
settings.SIMULATOR_APP_CALLS_PER_HOUR = 10**12
from django.core.management import call_command
call_command("runserver", sys.argv[1], use_reloader=False, use_threading=True, skip_checks=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(port: int, server: str = "runserver", server_workers: int = 2) -> subprocess.Popen:
    import requests

    if server == "gunicorn":
        # Meta serves from many machines; one process (runserver) would hold the simulator to one core.
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            f"--workers={server_workers}",
            "--preload",  # Django set up once, before the workers fork (as production servers run)
            # gunicorn also reads the portal's gunicorn.conf.py from the working directory: a
            # benchmark's simulator never recycles its workers mid-run.
            "--max-requests=0",
            f"--bind=127.0.0.1:{port}",
            f"--pythonpath={ROOT / 'bench'}",
            "simulator_wsgi:application",
        ]
    else:
        command = [sys.executable, "-c", SERVER, f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/simulator/graph/v26.0/", timeout=1)
        except requests.RequestException:
            time.sleep(0.2)
            continue
        # Meta's servers are warm: a few concurrent requests reach every worker before the clock starts.
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: requests.get(f"http://127.0.0.1:{port}/simulator/graph/v26.0/me"), range(16)))
        return process
    process.kill()
    raise SystemExit("The simulator did not start.")


FAKE_ASSETS = [
    ("page", "2001000000000001", "Page 1"),
    ("page", "2001000000000002", "Page 2"),
    ("ad_account", "3001000000000001", "Ad account 1"),
    ("ad_account", "3001000000000002", "Ad account 2"),
    ("business", "9100000000000001", "Acme Bakery"),
    ("business", "9100000000000002", "Bistro Nord"),
]


def fake_meta():
    """An in-process Meta that answers every token alike and keeps nothing per token (``--meta fake``)."""
    from testsupport.fake_graph import FakeGraph, FakeToken

    template = FakeToken(expires_at=None, assets={meta_id: (kind, name, None) for kind, meta_id, name in FAKE_ASSETS})

    class Every(dict):
        def get(self, key, default=None):
            return template

        def __getitem__(self, key):
            return template

    fake = FakeGraph()
    fake.tokens = Every()
    return fake


def seed(n: int, meta: str) -> None:
    """N tokens in the simulator (clones of one issued token) and the same N in the portal."""
    from django.apps import apps
    from django.conf import settings
    from django.utils import timezone

    from common.meta import graph_client
    from simulator import api, core
    from simulator.models import SimToken
    from tokens import crypto
    from tokens.install import granted_assets
    from tokens.models import AccessToken, Asset, AssetGrant, Reminder, SweepRun, TokenEvent

    ClientBusiness = apps.get_model("onboarding", "ClientBusiness")
    LoginConfiguration = apps.get_model("onboarding", "LoginConfiguration")
    Invitation = apps.get_model("onboarding", "Invitation")
    for model in (Reminder, TokenEvent, AssetGrant, SweepRun, Invitation):
        model.objects.all().delete()
    AccessToken.objects.filter(kind="granular_system_user").delete()
    AccessToken.objects.all().delete()
    Asset.objects.all().delete()
    ClientBusiness.objects.all().delete()
    LoginConfiguration.objects.filter(config_id="bench").delete()

    if meta == "fake":
        values = [f"EAAB-bench-{i}-{core.new_token_value()[:12]}" for i in range(n)]
        assets = Asset.objects.bulk_create([Asset(kind=k, meta_id=i, name=name) for k, i, name in FAKE_ASSETS])
        scopes = ["pages_show_list", "ads_read"]
        asset_scopes = {}
        stored = {"scopes": [], "granular_scopes": [], "expires_at": timezone.now() + timedelta(days=60)}
    else:
        api.reset()
        api.seed_world()
        api.register_app(
            settings.META_APP_ID, settings.META_APP_SECRET, [f"{settings.PORTAL_BASE_URL}/connect/callback/"]
        )
        first = api.issue_token(token_type="user", business_id=ACME, person_id=ALICE)
        template = SimToken.objects.get(value=first)
        values = [first]
        fields = SimToken._meta.concrete_fields
        for start in range(1, n, 5000):
            batch = []
            for _ in range(start, min(start + 5000, n)):
                template.pk = None
                template.value = core.new_token_value()
                batch.append(SimToken(**{f.attname: getattr(template, f.attname) for f in fields}))
                values.append(template.value)
            SimToken.objects.bulk_create(batch)
        client = graph_client()
        info = client.debug_token(first)
        refs = granted_assets(info.granular_scopes, client.list_assets(first))
        assets = Asset.objects.bulk_create([Asset(kind=r.kind, meta_id=r.meta_id, name=r.name) for r in refs])
        scopes = info.scopes
        # As onboarding's install stores them: the first sweep finds what a daily sweep finds.
        asset_scopes = {r.meta_id: r.scopes for r in refs}
        stored = {
            "scopes": list(info.scopes),
            "granular_scopes": list(info.granular_scopes),
            "expires_at": info.expires_at,
            "data_access_expires_at": info.data_access_expires_at,
        }
    configuration = LoginConfiguration.objects.create(
        name="Bench", config_id="bench", token_type="user", permissions=scopes, asset_types=["page"]
    )
    now = timezone.now()
    for start in range(0, n, 2000):
        chunk = values[start : start + 2000]
        clients = ClientBusiness.objects.bulk_create(
            [
                ClientBusiness(name=f"Bench client {start + i}", status="active", notification_emails="ops@bench.test")
                for i in range(len(chunk))
            ]
        )
        tokens = AccessToken.objects.bulk_create(
            [
                AccessToken(
                    client=c,
                    configuration=configuration,
                    kind="user",
                    value=v,
                    fingerprint=crypto.fingerprint(v),
                    meta_app_id=settings.META_APP_ID,
                    meta_user_id="bench",
                    next_check_at=now,
                    **stored,
                )
                for c, v in zip(clients, chunk, strict=True)
            ]
        )
        AssetGrant.objects.bulk_create(
            [AssetGrant(token=t, asset=a, scopes=asset_scopes.get(a.meta_id, [])) for t in tokens for a in assets]
        )
    settle_database()


def settle_database() -> None:
    """What autovacuum does to a live database: fresh planner statistics and no dead rows.

    Without it the sweep runs on the statistics of the tables as they were before seeding
    (empty), and autovacuum may wake up in the middle of the measurement.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sweep_worker(chunks: list[list[int]], run_id: int, meta: str, out) -> None:
    from django.db import connection

    from common.meta import graph_client
    from tokens.sweep import check_tokens

    rss_at_start = _rss_kb()  # a forked child starts with the parent's pages: count only what it adds
    queries = ledger = 0

    def count(execute, sql, params, many, context):
        nonlocal queries, ledger
        queries += 1
        ledger += "verification_apicallhour" in sql  # the verification app's Graph call hook
        return execute(sql, params, many, context)

    client = fake_meta() if meta == "fake" else graph_client()
    with connection.execute_wrapper(count):
        for chunk in chunks:
            check_tokens(chunk, run_id=run_id, client=client)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    requests = client.requests if meta == "fake" else 0
    out.send((queries, usage.ru_maxrss - rss_at_start, ledger, usage.ru_utime + usage.ru_stime, requests))
    out.close()


def _process_cpu_s(root: int | None) -> float:
    """CPU seconds of a process and its children (the simulator's server and its workers)."""
    if root is None:
        return 0.0
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(root) or fields[1] == str(root):  # fields[1] is the parent pid
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy (/proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_sweep(workers: int, meta: str, server_pid: int | None = None) -> dict:
    from django.db import connections

    from simulator import api
    from tokens.models import AccessToken, AssetGrant, SweepRun
    from tokens.sweep import start_sweep

    tokens = AccessToken.objects.count()
    grants = AssetGrant.objects.count()
    before = api.request_count() if meta == "simulator" else 0
    meta_cpu, busy = _process_cpu_s(server_pid), _machine_busy_s()
    started = time.perf_counter()
    run, chunks = start_sweep()
    connections.close_all()  # children must not share the parent's connection
    context = multiprocessing.get_context("fork")
    pipes, processes = [], []
    for w in range(workers):
        parent, child = context.Pipe()
        process = context.Process(target=sweep_worker, args=(chunks[w::workers], run.pk, meta, child))
        process.start()
        pipes.append(parent)
        processes.append(process)
    reports = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join()
    wall = time.perf_counter() - started
    meta_cpu, busy = _process_cpu_s(server_pid) - meta_cpu, _machine_busy_s() - busy
    run = SweepRun.objects.get(pk=run.pk)
    checked = AccessToken.objects.filter(last_checked_at__gte=run.started_at).count()
    return {
        "tokens": tokens,
        "assets": grants,
        "chunks": len(chunks),
        "checked": checked,
        "run_status": run.status,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "http_requests": (api.request_count() - before) if meta == "simulator" else sum(r[4] for r in reports),
        "http_bound": math.ceil(grants / 50) + math.ceil(tokens / 50),
        "queries": sum(r[0] for r in reports),
        "queries_per_chunk": sum(r[0] - r[2] for r in reports) / max(len(chunks), 1),
        "ledger_queries_per_chunk": sum(r[2] for r in reports) / max(len(chunks), 1),
        "peak_rss_mb": max(r[1] for r in reports) / 1024,
        "portal_cpu_s": sum(r[3] for r in reports),
        "meta_cpu_s": meta_cpu,
        # PostgreSQL, Redis, the parent's start_sweep, and whatever else runs on the machine.
        "other_cpu_s": busy - meta_cpu - sum(r[3] for r in reports),
    }


def run_reminders(count: int) -> dict:
    from aiosmtpd.controller import Controller
    from django.conf import settings
    from django.utils import timezone

    from tokens.models import AccessToken, Reminder
    from tokens.reminders import plan_reminders, send_due_reminders

    class Sink:
        received = 0

        async def handle_DATA(self, server, session, envelope):
            Sink.received += 1
            return "250 OK"

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = controller.hostname, controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        ids = list(AccessToken.objects.order_by("pk").values_list("pk", flat=True)[:count])
        AccessToken.objects.filter(pk__in=ids).update(expires_at=timezone.now() + timedelta(days=3))
        started = time.perf_counter()
        plan_reminders()
        planned = time.perf_counter() - started
        pending = Reminder.objects.filter(status="pending").count()
        started = time.perf_counter()
        while send_due_reminders(limit=settings.REMINDER_BATCH_SIZE).claimed:
            pass
        sending = time.perf_counter() - started
    finally:
        controller.stop()
    return {
        "reminders": pending,
        "plan_s": planned,
        "send_s": sending,
        "messages_per_s": Sink.received / sending if sending else 0.0,
        "received": Sink.received,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workers", type=int, default=1, help="sweeping processes (the chunks fan out to them)")
    parser.add_argument("--reminders", type=int, default=500, help="tokens made due for a reminder (1 each)")
    parser.add_argument(
        "--meta",
        choices=["simulator", "fake"],
        default="simulator",
        help="the simulator over HTTP, or an in-process fake (measures the portal's own cost)",
    )
    parser.add_argument(
        "--server",
        choices=["runserver", "gunicorn"],
        default="gunicorn",
        help="how the simulator is served: Django's threaded runserver (one process) or gunicorn",
    )
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args()

    port = free_port()
    os.environ["META_GRAPH_URL"] = f"http://127.0.0.1:{port}/simulator/graph"
    os.environ["PORTAL_BASE_URL"] = f"http://127.0.0.1:{port}"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    server = start_simulator(port, args.server, args.server_workers) if args.meta == "simulator" else None
    try:
        print(
            "| tokens | assets | chunks | wall s | tokens/s | portal CPU s | Meta CPU s | other CPU s "
            "| HTTP requests (bound) "
            "| DB queries/chunk (+ ledger hook) | sweep peak RSS growth MB | reminders | plan s | sent/s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n in args.tokens:
            seed(n, args.meta)
            s = run_sweep(args.workers, args.meta, server.pid if server else None)
            assert s["checked"] == n and s["run_status"] == "finished", s
            r = run_reminders(min(args.reminders, n))
            print(
                f"| {s['tokens']:,} | {s['assets']:,} | {s['chunks']} | {s['wall_s']:.1f} | {s['tokens_per_s']:.0f} "
                f"| {s['portal_cpu_s']:.1f} | {s['meta_cpu_s']:.1f} | {s['other_cpu_s']:.1f} "
                f"| {s['http_requests']:,} ({s['http_bound']:,}) "
                f"| {s['queries_per_chunk']:.1f} (+{s['ledger_queries_per_chunk']:.0f}) "
                f"| {s['peak_rss_mb']:.0f} | {r['reminders']:,} | {r['plan_s']:.1f} | {r['messages_per_s']:.0f} |",
                flush=True,
            )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
