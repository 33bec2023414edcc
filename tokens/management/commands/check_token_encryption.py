from django.core.management.base import BaseCommand, CommandError

from tokens.key_rotation import check_encryption


class Command(BaseCommand):
    help = "Check that every stored token decrypts under FIELD_ENCRYPTION_KEY. Changes nothing."

    def handle(self, *args, **options):
        report = check_encryption()
        self.stdout.write(
            f"{report.total} stored token(s): {report.current_key} under the current key, "
            f"{report.previous_keys} under a previous key, {report.unreadable} unreadable."
        )
        if report.previous_keys:
            self.stdout.write("Run rotate_field_encryption_key to move the rest to the current key.")
        if report.unreadable:
            ids = ", ".join(map(str, report.unreadable_ids[:20]))
            raise CommandError(f"{report.unreadable} token(s) do not decrypt (ids: {ids}).")
