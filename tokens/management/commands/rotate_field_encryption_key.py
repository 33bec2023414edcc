import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tokens.events import record_event
from tokens.key_rotation import DEFAULT_BATCH_SIZE, KeyRotationError, RotationProgress, rotate_encryption_key


class Command(BaseCommand):
    # Programmatic callers (tests) may pass the keys directly; the CLI only reads them from the environment.
    stealth_options = ("old_key", "new_key")
    help = (
        "Re-encrypt every stored token (and other encrypted secrets) from the old field-encryption key "
        "to the new one, in batches. "
        "Keys are read from environment variables so they never appear in the process list. "
        "Procedure: deploy with FIELD_ENCRYPTION_KEY=<new> and FIELD_ENCRYPTION_PREVIOUS_KEYS=<old>, "
        "run this command with FIELD_ENCRYPTION_OLD_KEY=<old>, then drop the previous key. "
        "Interrupted (killed, database restarted)? Run it again: it goes on where the last batch committed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--old-key-env", default="FIELD_ENCRYPTION_OLD_KEY", help="Variable holding the old key."
        )
        parser.add_argument(
            "--new-key-env",
            default="",
            help="Variable holding the new key (default: the configured FIELD_ENCRYPTION_KEY).",
        )
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(self, *args, **options):
        old_key = options.get("old_key") or os.environ.get(options["old_key_env"], "")
        new_key = options.get("new_key") or (
            os.environ.get(options["new_key_env"], "") if options["new_key_env"] else settings.FIELD_ENCRYPTION_KEY
        )
        if not old_key:
            raise CommandError(f"Set {options['old_key_env']} to the old key.")

        def report(progress: RotationProgress) -> None:
            self.stdout.write(
                f"batch {progress.batches}: {progress.checked} of {progress.total} checked, "
                f"{progress.rotated} re-encrypted, {progress.already} already under the new key"
            )
            self.stdout.flush()

        try:
            progress = rotate_encryption_key(old_key, new_key, batch_size=options["batch_size"], on_batch=report)
        except KeyRotationError as exc:
            raise CommandError(str(exc))
        done = f"{progress.rotated} value(s) (tokens and other secrets) re-encrypted"
        record_event(
            "key_rotated", actor="staff:command", message=f"{done} ({progress.already} already under the new key)."
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"{done} under the new key; {progress.already} were already (an earlier run, or written since)."
            )
        )
