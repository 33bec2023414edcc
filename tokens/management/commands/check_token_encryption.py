from django.core.management.base import BaseCommand, CommandError

from tokens.key_rotation import check_encryption, check_other_columns


class Command(BaseCommand):
    help = (
        "Check that every stored token (and every other encrypted secret, such as webhook signing secrets) "
        "decrypts under FIELD_ENCRYPTION_KEY. Changes nothing."
    )

    def handle(self, *args, **options):
        reports = {"token(s)": check_encryption(), **check_other_columns()}
        for what, report in reports.items():
            self.stdout.write(
                f"{report.total} stored {what}: {report.current_key} under the current key, "
                f"{report.previous_keys} under a previous key, {report.unreadable} unreadable."
            )
        if any(report.previous_keys for report in reports.values()):
            self.stdout.write("Run rotate_field_encryption_key to move the rest to the current key.")
        unreadable = [
            f"{report.unreadable} {what} (ids: {', '.join(map(str, report.unreadable_ids[:20]))})"
            for what, report in reports.items()
            if report.unreadable
        ]
        if unreadable:
            raise CommandError(f"These do not decrypt: {'; '.join(unreadable)}.")
