"""Child processes that tests start (servers, workers): stopped with their whole process group."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the group (a warm shutdown for Celery and gunicorn); SIGKILL what is still alive after ``timeout``."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


# A fresh interpreter per child: Django set up on the test's database, the test's settings applied,
# "ready" printed, then the call made once the parent says "go", its int result the exit code.
_CHILD = """
import importlib, json, os, sys
import django
django.setup()
from django.conf import settings
from django.db import connections
for name, value in json.loads(os.environ["PORTAL_CHILD_SETTINGS"]).items():
    setattr(settings, name, value)
module, function = sys.argv[1].split(":")
call = getattr(importlib.import_module(module), function)
print("ready", flush=True)
sys.stdin.readline()
result = call()
connections.close_all()
sys.exit(int(result or 0))
"""


def run_in_fresh_processes(
    count: int, target: str, *, settings_overrides: dict | None = None, timeout: float = 120
) -> list[int | None]:
    """Run ``target`` ("module:function") in ``count`` new Python processes at once; their exit codes.

    Spawned, not forked: a child forked from the test process (which has live-server, receiver and
    driver threads by then) can inherit a lock another thread held at the fork and hang for ever.
    Each child uses the test database (as the Celery workers of the worker tests do) and the given
    settings (JSON values), and starts its call only when every child is ready, so they overlap.
    A child still running after ``timeout`` is killed and reported as None.
    """
    import json
    import sys
    from pathlib import Path

    from django.db import connection

    database = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "PORTAL_CHILD_SETTINGS": json.dumps(settings_overrides or {}),
    }
    root = Path(__file__).resolve().parents[1]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, target],
            cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        for _ in range(count)
    ]
    try:
        for child in children:
            child.stdout.readline()  # "ready" (or "" if it died setting up: its exit code says so)
        for child in children:
            try:
                child.stdin.write("go\n")
                child.stdin.close()
            except BrokenPipeError:
                pass
        codes = []
        for child in children:
            try:
                codes.append(child.wait(timeout=timeout))
            except subprocess.TimeoutExpired:
                codes.append(None)
        return codes
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            child.stdout.close()
