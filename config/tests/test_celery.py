"""A task makes the whole trip: sender -> broker -> a real worker process -> result backend.

Both brokers are exercised in separate processes, exactly as deployed: Redis (CI,
production) and the embedded filesystem transport (the demo). Each test uses its own
queue so it never takes another test's messages.
"""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SENDER = (
    "import sys, django; django.setup();"
    "from config.celery import ping;"
    "print(ping.apply_async(args=[sys.argv[1]], queue=sys.argv[2]).get(timeout=60))"
)


def round_trip(env: dict[str, str]) -> str:
    queue = f"roundtrip-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    celery = str(Path(sys.executable).with_name("celery"))
    worker = subprocess.Popen(
        [celery, "-A", "config", "worker", "-P", "solo", "-Q", queue, "--without-heartbeat",
         "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        sent = subprocess.run(
            [sys.executable, "-c", SENDER, "hello", queue], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=90,
        )
        assert sent.returncode == 0, sent.stderr
        return sent.stdout.strip()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


@pytest.mark.services
def test_a_task_round_trips_through_a_real_worker_and_redis(redis_url):
    assert round_trip({"REDIS_URL": redis_url}) == "pong:hello"


def test_a_task_round_trips_through_the_embedded_filesystem_broker(tmp_path):
    env = {"REDIS_URL": "", "PORTAL_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    assert round_trip(env) == "pong:hello"
