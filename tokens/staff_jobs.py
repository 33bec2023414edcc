"""Staff actions on tokens, as staff jobs (staffjobs): run by a worker, with progress and advice.

Each handler re-reads its rows, calls the service that owns the work, and turns every failure
into a sentence staff can act on (graph.advice) instead of Meta's payload. Registered when the
app starts (TokensConfig.ready()).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice

from django.urls import reverse

from graph.advice import staff_advice
from graph.errors import GraphError
from staffjobs.jobs import ERROR, SUCCESS, WARNING, JobContext
from staffjobs.registry import staff_job

from . import crypto, install, page_tokens, reminders, sweep, system_users
from .models import AccessToken, Asset

CHECK_BATCH = 50  # one Graph batch of debug_token items: progress moves after each

UNREADABLE = ("its stored value can't be read with the configured encryption keys "
              "(see README, Operations: check_token_encryption); nothing was sent to Meta.")


def _failure(error: Exception) -> str:
    if isinstance(error, GraphError):
        return staff_advice(error)
    if isinstance(error, crypto.TokenDecryptionError):
        return UNREADABLE
    return str(error)  # SystemUserTokenError: our own sentence, free of secrets


def for_each_token(job: JobContext, token_ids: list[int], do: Callable[[AccessToken], str]) -> None:
    """Run ``do`` per token (in id order), noting its sentence or the advice for its failure."""
    tokens = AccessToken.objects.filter(pk__in=token_ids).select_related("client").order_by("pk")
    for token in tokens:
        try:
            text = do(token)
        except (GraphError, crypto.TokenDecryptionError, system_users.SystemUserTokenError) as error:
            job.note(ERROR, f"Token #{token.pk} ({token.client}): {_failure(error)}")
        else:
            job.note(SUCCESS, f"Token #{token.pk} ({token.client}): {text}")
        job.advance()


def _batches(ids: list[int], size: int):
    iterator = iter(ids)
    while batch := list(islice(iterator, size)):
        yield batch


@staff_job("tokens.check_now")
def check_now(job: JobContext, token_ids: list[int]) -> None:
    totals: dict[str, int] = {}
    for batch in _batches(sorted(token_ids), CHECK_BATCH):
        try:
            result = sweep.check_tokens(batch)
        except GraphError as error:
            job.note(ERROR, f"{len(batch)} token(s) were not checked: {staff_advice(error)}")
        else:
            for name, value in {**result.totals(), "skipped": result.skipped}.items():
                totals[name] = totals.get(name, 0) + value
        job.advance(len(batch))
    reminders.plan_reminders()
    if not totals:
        return
    level = WARNING if totals["errors"] or totals["deferred"] else SUCCESS
    job.note(level, f"Checked {totals['checked']}: {totals['active']} active, {totals['expiring']} expiring, "
                    f"{totals['invalid']} invalid; {totals.get('permissions_removed', 0)} with a permission removed; "
                    f"{totals['errors']} could not be checked now, "
                    f"{totals['deferred']} deferred (Meta's rate limit: the sweep checks them soon), "
                    f"{totals['skipped']} not live. Assets: {totals['assets_added']} added, "
                    f"{totals['assets_removed']} removed.")
    if totals["invalid"]:
        job.note(WARNING, "Invalid tokens no longer work: send those clients a reconnect link.")


@staff_job("tokens.derive_page_tokens")
def derive_page_tokens(job: JobContext, token_ids: list[int]) -> None:
    def derive(token: AccessToken) -> str:
        derived = page_tokens.derive_page_tokens(token)
        return f"{len(derived)} new Page token(s) stored." if derived else "no new Page token."

    for_each_token(job, token_ids, derive)


@staff_job("tokens.fetch_system_user_token")
def fetch_system_user_token(job: JobContext, token_ids: list[int]) -> None:
    def fetch(token: AccessToken) -> str:
        changed = system_users.fetch_current_system_user_token(token, actor_user=job.user)
        return "Meta had a newer token; it was stored." if changed else "unchanged: Meta's current token is ours."

    for_each_token(job, token_ids, fetch)


@staff_job("tokens.create_granular_token")
def create_granular_token(job: JobContext, token_ids: list[int], *, asset_ids: list[int], scopes: list[str],
                          expires_in_60_days: bool = False, purpose: str = "") -> None:
    def create(parent: AccessToken) -> str:
        assets = list(Asset.objects.filter(pk__in=asset_ids))
        token = system_users.create_granular_token(
            parent, assets=assets, scopes=scopes, expires_in_60_days=expires_in_60_days, purpose=purpose,
            actor_user=job.user,
        )
        job.set_result_url(reverse("admin:tokens_accesstoken_change", args=[token.pk]))
        return f"granular token #{token.pk} created for {len(assets)} asset(s)."

    for_each_token(job, token_ids[:1], create)


@staff_job("tokens.revoke")
def revoke(job: JobContext, token_ids: list[int]) -> None:
    def revoke_one(token: AccessToken) -> str:
        revoked = install.revoke_token(token, actor_user=job.user)
        if not revoked:
            return "was already revoked."
        derived = len(revoked) - 1
        return "revoked: Meta removed the app's permissions" + (
            f"; {derived} granular token(s) derived from it were revoked too." if derived else "."
        )

    for_each_token(job, token_ids, revoke_one)
