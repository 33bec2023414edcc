"""Benchmark of field-encryption key rotation, and of resuming it after a kill (not a test).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/key_rotation.py --tokens 100000

Seeds N tokens under an old key (as onboarding stores them: encrypted value and keyed
fingerprint), then:

1. runs ``manage.py rotate_field_encryption_key`` to the end, as an operator would (a child
   process, keys in its environment), and reports wall time, rows/s and the child's peak RSS;
2. rotates back to the old key, kills that run with SIGKILL once it reports half of the rows
   done, runs the command again, and reports what the second run found done and its time;
3. checks every token decrypts under the final key (``check_token_encryption``).

Everything it seeds is deleted first and at the end: use a database of its own.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")

OLD_KEY = "bench-old-field-encryption-key-0123456789abcdef"
NEW_KEY = "bench-new-field-encryption-key-fedcba9876543210"
CLIENT_NAME = "bench: key rotation"


def delete_seeded() -> None:
    from onboarding.models import ClientBusiness
    from tokens.models import AccessToken

    AccessToken.objects.filter(client__name=CLIENT_NAME).delete()
    ClientBusiness.objects.filter(name=CLIENT_NAME).delete()


def seed(count: int) -> None:
    from django.db import connection

    from onboarding.models import ClientBusiness
    from tokens import crypto
    from tokens.models import AccessToken

    delete_seeded()
    client = ClientBusiness.objects.create(name=CLIENT_NAME, status="active")
    started = time.monotonic()
    rows = []
    for n in range(count):
        value = f"EAAB{n:012d}bench{os.urandom(24).hex()}"
        rows.append(
            AccessToken(
                client=client,
                kind="user",
                value=value,
                fingerprint=crypto.fingerprint(value, key=OLD_KEY),
                scopes=["pages_show_list"],
            )
        )
        if len(rows) == 5000:
            AccessToken.objects.bulk_create(rows)
            rows = []
    AccessToken.objects.bulk_create(rows)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE tokens_accesstoken")
    print(f"seeded {count} tokens in {time.monotonic() - started:.1f}s", flush=True)


def rotate(old: str, new: str, batch_size: int, kill_at: int | None = None) -> tuple[float, int, list[str]]:
    """Run the command; optionally SIGKILL it once ``kill_at`` rows are checked. (seconds, peak KiB, lines)."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "FIELD_ENCRYPTION_KEY": new,
        "FIELD_ENCRYPTION_PREVIOUS_KEYS": old,
        "FIELD_ENCRYPTION_OLD_KEY": old,
    }
    command = [sys.executable, "manage.py", "rotate_field_encryption_key", "--batch-size", str(batch_size)]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip())
        if kill_at is not None and line.startswith("batch ") and int(line.split()[2]) >= kill_at:
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    elapsed = time.monotonic() - started
    if kill_at is None and process.returncode != 0:
        raise SystemExit(f"rotation failed ({process.returncode}):\n" + "\n".join(lines[-5:]))
    # ru_maxrss of children is the largest RSS any child reached (KiB on Linux).
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    os.environ["FIELD_ENCRYPTION_KEY"] = OLD_KEY

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("Point DATABASE_URL at PostgreSQL: the rotation is measured where production runs it.")
    call_command("migrate", verbosity=0)
    seed(args.tokens)
    print(f"database: {settings.DATABASES['default']['NAME']}, batch size {args.batch_size}", flush=True)

    elapsed, peak_kib, lines = rotate(OLD_KEY, NEW_KEY, args.batch_size)
    print(f"full run:    {args.tokens} tokens in {elapsed:.1f}s ({args.tokens / elapsed:,.0f}/s), "
          f"peak RSS {peak_kib / 1024:.0f} MiB | {lines[-1]}", flush=True)  # fmt: skip

    half = args.tokens // 2
    killed, _, killed_lines = rotate(NEW_KEY, OLD_KEY, args.batch_size, kill_at=half)
    print(f"killed run:  SIGKILL after {killed:.1f}s | {killed_lines[-1]}", flush=True)
    resumed, peak_kib, resumed_lines = rotate(NEW_KEY, OLD_KEY, args.batch_size)
    print(f"resumed run: {resumed:.1f}s, peak RSS of any run {peak_kib / 1024:.0f} MiB | {resumed_lines[-1]}",
          flush=True)  # fmt: skip

    os.environ["FIELD_ENCRYPTION_KEY"] = OLD_KEY
    check = subprocess.run(
        [sys.executable, "manage.py", "check_token_encryption"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "FIELD_ENCRYPTION_PREVIOUS_KEYS": ""},
    )  # fmt: skip
    print(f"check:       {check.stdout.strip()} (exit {check.returncode})", flush=True)

    delete_seeded()


if __name__ == "__main__":
    main()
