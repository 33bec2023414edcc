"""Key rotation survives being killed: run the command again and it finishes where the last batch committed."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from testsupport.factories import make_client
from tokens import crypto
from tokens.models import AccessToken

ROOT = Path(__file__).resolve().parents[2]
NEW_KEY = "the-new-field-encryption-key-for-this-test-0123456789"
TOKENS, BATCH = 30, 5
LOCKED_INDEX = 17  # inside the fourth batch: three batches (15 tokens) commit before the lock stops the run


def raw(pk: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM tokens_accesstoken WHERE id = %s", [pk])
        return bytes(cursor.fetchone()[0])


def readable_with(pk: int, key: str) -> bool:
    try:
        crypto.decrypt(raw(pk), keys=[key])
    except crypto.TokenDecryptionError:
        return False
    return True


def database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.slow
def test_a_rotation_killed_mid_run_finishes_when_run_again(transactional_db, postgres_required, tmp_path):
    client = make_client()
    tokens = [
        AccessToken.objects.create(client=client, kind="user", value=f"EAA-rotation-{n:02d}") for n in range(TOKENS)
    ]
    ids = [token.pk for token in tokens]
    old_key = settings.FIELD_ENCRYPTION_KEY
    db = settings.DATABASES["default"]

    # Another session holds a lock on one row: the run stops there, mid-run, with earlier batches committed.
    blocker = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"])
    blocker.execute("SELECT id FROM tokens_accesstoken WHERE id = %s FOR UPDATE", [ids[LOCKED_INDEX]])
    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PORTAL_VAR_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1", "DATABASE_URL": database_url(), "FIELD_ENCRYPTION_KEY": NEW_KEY,
        "FIELD_ENCRYPTION_PREVIOUS_KEYS": old_key, "FIELD_ENCRYPTION_OLD_KEY": old_key,
    }  # fmt: skip
    run = subprocess.Popen(
        [sys.executable, "manage.py", "rotate_field_encryption_key", "--batch-size", str(BATCH)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        for line in run.stdout:
            if line.startswith("batch 3:"):
                break
        else:
            pytest.fail(f"the run ended before its third batch (exit {run.wait()})")
        os.killpg(run.pid, signal.SIGKILL)  # blocked on the locked row, inside its fourth batch
        run.wait(timeout=30)
    finally:
        blocker.rollback()
        blocker.close()

    assert all(readable_with(pk, NEW_KEY) for pk in ids[:15])
    assert not any(readable_with(pk, NEW_KEY) for pk in ids[15:])  # the killed batch wrote nothing
    assert all(readable_with(pk, old_key) for pk in ids[15:])

    resumed = subprocess.run(
        [sys.executable, "manage.py", "rotate_field_encryption_key", "--batch-size", str(BATCH)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "15 value(s) (tokens and other secrets) re-encrypted under the new key; 15 were already" in resumed.stdout
    with override_settings(FIELD_ENCRYPTION_KEY=NEW_KEY, FIELD_ENCRYPTION_PREVIOUS_KEYS=[]):
        for n, token in enumerate(AccessToken.objects.filter(pk__in=ids).order_by("pk")):
            assert token.value == f"EAA-rotation-{n:02d}"
            assert token.fingerprint == crypto.fingerprint(token.value, key=NEW_KEY)
        call_command("check_token_encryption")  # every token under the current key


def test_a_second_run_after_a_finished_one_changes_nothing(db, capsys):
    client = make_client()
    token = AccessToken.objects.create(client=client, kind="user", value="EAA-once")
    old_key = settings.FIELD_ENCRYPTION_KEY
    call_command("rotate_field_encryption_key", old_key=old_key, new_key=NEW_KEY, batch_size=2)
    after = raw(token.pk)
    call_command("rotate_field_encryption_key", old_key=old_key, new_key=NEW_KEY, batch_size=2)
    assert raw(token.pk) == after
    out = capsys.readouterr().out
    assert "0 value(s) (tokens and other secrets) re-encrypted under the new key; 1 were already" in out
