from django.db import models


class FirstScreenSnapshot(models.Model):
    """The first screen's figures as last computed (console.first_screen): one row, replaced each minute."""

    computed_at = models.DateTimeField()
    seconds = models.FloatField(help_text="How long computing the figures took.")
    figures = models.JSONField(default=dict)

    class Meta:
        verbose_name = "first screen snapshot"

    def __str__(self) -> str:
        return f"First screen as of {self.computed_at:%Y-%m-%d %H:%M:%S}"
