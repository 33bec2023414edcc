"""The health sweep under faults, against the local simulator (not a test): the figures of docs/reliability.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/faults.py --scenarios storm invalid kills

Scenarios (each seeds its own tokens; everything it seeds is deleted first: use a database of its own):

- ``storm``: ``--tokens`` user tokens (bench/sweep.py's seeding), swept by ``--workers`` processes
  while the simulator fails: ``--edge-rate`` of HTTP requests answered by the edge (HTML 502),
  ``--timeout-rate`` of batches hanging ``--hang-ms`` before Meta's ``null`` items (a per-call
  rate of 1-(1-r)^(1/50)), and a rate-limit burst of ``--burst-requests`` requests every
  ``--burst-every`` seconds. Then the faults stop and the next beat's sweep runs (time moved by
  SWEEP_BEAT_SECONDS, not waited). Reports how many were checked, wrongly invalid, errors,
  deferred, and how many were still unchecked after that next beat.
- ``invalid``: ``--invalid`` tokens that Meta answers 190 for, each client with its own address:
  one sweep, then reminders planned and sent to a local SMTP server. Reports tokens flagged,
  messages received, reminders per message.
- ``kills``: ``--kill-tokens`` tokens swept by a real Celery worker (Redis broker) with the
  production settings (chunk lease 135 s, reaper every 60 s, visibility timeout 360 s). The
  simulator holds the first chunk's first batch; the worker's pool process is SIGKILLed, then
  (second round) the whole worker, and a new worker and beat are started. Reports seconds from
  the kill to every token checked, and the run's figures against the truth.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")

from sweep import free_port, seed, settle_database, start_simulator  # noqa: E402 (bench/sweep.py)

BATCH = 50


def per_call_rate(batch_rate: float) -> float:
    """The per-call timeout rate that makes ``batch_rate`` of 50-item batches hit a timeout."""
    return 1 - (1 - batch_rate) ** (1 / BATCH)


def sweep_once(workers: int, now=None) -> dict:
    """One beat: start_sweep, then its chunks in ``workers`` forked processes, as the Celery tasks do."""
    import multiprocessing

    from django.db import connections

    from tokens.sweep import check_tokens, start_sweep

    started = time.perf_counter()
    run, chunks = start_sweep(now=now)
    connections.close_all()  # the children must not share the parent's connection

    def work(part):
        for chunk in part:
            check_tokens(chunk, run_id=run.pk, now=now)

    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=work, args=(chunks[w::workers],)) for w in range(workers)]
    for process in processes:
        process.start()
    return {"run": run, "processes": processes, "started": started}


def wait_sweep(sweep: dict) -> dict:
    from tokens.models import SweepRun

    for process in sweep["processes"]:
        process.join()
    run = SweepRun.objects.get(pk=sweep["run"].pk)
    return {"run": run, "wall_s": time.perf_counter() - sweep["started"]}


def storm(args) -> None:
    from django.conf import settings
    from django.utils import timezone

    from simulator import api
    from tokens.models import AccessToken

    seed(args.tokens, "simulator")
    AccessToken.objects.update(last_checked_at=None)
    settle_database()
    api.set_faults(
        edge_error_rate=args.edge_rate, timeout_rate=per_call_rate(args.timeout_rate), timeout_hang_ms=args.hang_ms,
        seed=args.seed,
    )  # fmt: skip
    before = api.request_count()
    bursts = 0
    stop = threading.Event()

    def burst_every():
        nonlocal bursts
        while args.burst_every > 0 and not stop.wait(args.burst_every):
            api.rate_limit_burst(args.burst_requests, regain_minutes=1)
            bursts += 1

    sweep = sweep_once(args.workers)
    controller = threading.Thread(target=burst_every, daemon=True)
    controller.start()
    faulty = wait_sweep(sweep)
    stop.set()
    controller.join()
    api.clear_faults()
    faults_stopped = timezone.now()
    requests = api.request_count() - before
    tokens = AccessToken.objects.all()
    checked_under_faults = tokens.exclude(last_checked_at=None).count()

    next_beat = faults_stopped + timedelta(seconds=settings.SWEEP_BEAT_SECONDS)
    calm = wait_sweep(sweep_once(args.workers, now=next_beat))
    unchecked = tokens.filter(last_checked_at=None).count()
    run, after = faulty["run"], calm["run"]
    print(
        "| tokens | faults | sweep under faults: wall s, checked, errors, deferred | HTTP requests served | bursts "
        "| wrongly invalid | next beat (faults stopped): tokens due, checked, wall s | unchecked after it |"
    )
    print("|---|---|---|---|---|---|---|---|")
    bursting = f"bursts of {args.burst_requests} every {args.burst_every:g} s" if args.burst_every > 0 else "no bursts"
    print(
        f"| {args.tokens:,} | {args.edge_rate:.0%} HTML 502, {args.timeout_rate:.0%} batches hang {args.hang_ms} ms, "
        f"{bursting} | {faulty['wall_s']:.0f}, {checked_under_faults:,}, {run.errors:,}, {run.items_deferred:,} "
        f"| {requests:,} | {bursts} | {tokens.filter(status='invalid').count()} "
        f"| {after.items_total:,}, {after.items_done:,}, {calm['wall_s']:.1f} | {unchecked} |",
        flush=True,
    )
    assert run.items_done == checked_under_faults, "the run counts exactly the tokens checked"


def invalid(args) -> None:
    from aiosmtpd.controller import Controller
    from django.conf import settings

    from onboarding.models import ClientBusiness
    from simulator.models import SimToken
    from tokens.models import AccessToken, Reminder
    from tokens.reminders import plan_reminders, send_due_reminders

    seed(args.invalid, "simulator")
    for pk, client_id in AccessToken.objects.values_list("pk", "client_id"):
        ClientBusiness.objects.filter(pk=client_id).update(notification_emails=f"ops{pk}@bench.test")
    # Every token revoked at Meta: debug_token answers is_valid false with a 190 (460).
    SimToken.objects.update(invalid_subcode=460, invalid_message="")

    flagged = wait_sweep(sweep_once(args.workers))
    run = flagged["run"]

    class Sink:
        messages = 0
        reminders: list[str] = []

        async def handle_DATA(self, server, session, envelope):
            import email

            Sink.messages += 1
            Sink.reminders.extend(email.message_from_bytes(envelope.content)["X-Portal-Reminder"].split(","))
            return "250 OK"

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = controller.hostname, controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        plan_reminders()
        planned = Reminder.objects.filter(reason="token_invalid").count()
        started = time.perf_counter()
        while send_due_reminders().claimed:
            pass
        sending = time.perf_counter() - started
    finally:
        controller.stop()
    per_token = Reminder.objects.filter(reason="token_invalid").values_list("token_id", flat=True)
    print("| tokens answering 190 | one sweep: wall s, flagged invalid, run's invalid | reminders planned "
          "| messages received | each reminder delivered | send s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.invalid:,} | {flagged['wall_s']:.1f}, {AccessToken.objects.filter(status='invalid').count():,}, "
        f"{run.items_invalid:,} | {planned:,} ({len(set(per_token)):,} tokens) | {Sink.messages:,} "
        f"| {'once' if sorted(Sink.reminders) == sorted(set(Sink.reminders)) else 'more than once'} "
        f"| {sending:.1f} |",
        flush=True,
    )


# --- kills, with real Celery processes -----------------------------------------------------------


def celery(role: str, queue: str, env: dict, *extra: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("celery")), "-A", "config", role, *extra]
    if role == "worker":
        command += ["-Q", queue, "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle"]
    return subprocess.Popen(
        command + ["--loglevel=WARNING"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def wait_for(condition, seconds: float = 900) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise SystemExit("Timed out")
        time.sleep(0.5)
    return time.monotonic() - started


def kills(args) -> None:
    from django.utils import timezone

    from simulator import api
    from tokens import tasks
    from tokens.models import AccessToken, SweepRun

    queue = f"bench-kills-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "CELERY_TASK_DEFAULT_QUEUE": queue, "SWEEP_BEAT_SECONDS": "86400"}
    tasks.check_token_chunk.app.conf.task_default_queue = queue
    rows = []
    for how in ("pool process", "whole worker"):
        seed(args.kill_tokens, "simulator")
        AccessToken.objects.update(last_checked_at=None, next_check_at=timezone.now())
        processes = [celery("worker", queue, env, "-P", "prefork", "--concurrency=1")]
        api.hang_requests(1, seconds=900)
        tasks.start_health_sweep.apply_async(queue=queue)
        wait_for(lambda: api.hanging_requests() == 1)
        run = SweepRun.objects.order_by("-pk").first()
        worker = processes[0]
        if how == "pool process":
            (pool,) = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
            os.kill(int(pool), signal.SIGKILL)
        else:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            schedule = ROOT / "var" / f"bench-beat-{queue}"
            processes = [celery("worker", queue, env), celery("beat", queue, env, "-s", str(schedule))]
        killed = time.monotonic()
        api.release_hangs()
        wait_for(lambda run=run: SweepRun.objects.filter(pk=run.pk, status="finished").exists())
        recheck = time.monotonic() - killed
        run.refresh_from_db()
        truth = AccessToken.objects.exclude(last_checked_at=None).count()
        rows.append((how, recheck, run, truth))
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    print("| killed mid-chunk | tokens | seconds from the kill to every token checked | run: checked / total, errors, "
          "deferred, chunks | tokens checked (the truth) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for how, recheck, run, truth in rows:
        print(
            f"| {how} | {run.items_total:,} | {recheck:.0f} | {run.items_done:,} / {run.items_total:,}, {run.errors}, "
            f"{run.items_deferred}, {run.chunks_done} of {run.chunks_total} | {truth:,} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", choices=["storm", "invalid", "kills"], default=["storm", "invalid"])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="sweeping processes")
    parser.add_argument("--edge-rate", type=float, default=0.30)
    parser.add_argument("--timeout-rate", type=float, default=0.10, help="share of batches that hang, then time out")
    parser.add_argument("--hang-ms", type=int, default=2000)
    parser.add_argument("--burst-every", type=float, default=10.0)
    parser.add_argument("--burst-requests", type=int, default=4)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--invalid", type=int, default=500)
    parser.add_argument("--kill-tokens", type=int, default=1000)
    parser.add_argument("--server-workers", type=int, default=4, help="gunicorn workers of the simulator")
    args = parser.parse_args()

    port = free_port()
    os.environ["META_GRAPH_URL"] = f"http://127.0.0.1:{port}/simulator/graph"
    os.environ["PORTAL_BASE_URL"] = f"http://127.0.0.1:{port}"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    server = start_simulator(port, "gunicorn", args.server_workers)
    try:
        for scenario in args.scenarios:
            {"storm": storm, "invalid": invalid, "kills": kills}[scenario](args)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
