"""Checking one chunk of tokens: claim them, ask Meta, write every change in a few statements."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import BinaryField, Q
from django.db.models.functions import Cast
from django.utils import timezone

from common.bulk import bulk_set
from graph.errors import GraphError, InvalidTokenError, RateLimitError, TransientError

from .. import crypto, health
from ..crypto import TokenDecryptionError
from ..install import GrantedAsset
from ..models import AccessToken, Asset, AssetGrant, SweepRun, TokenEvent
from ..signals import tokens_invalidated
from . import decisions
from .coverage import read_coverage
from .runs import finish_if_done, record_outcomes
from .state import Answers, ChunkResult, GrantRow, TokenCheck

logger = logging.getLogger(__name__)

META_BATCH = 50  # Graph batch limit: one HTTP request per 50 tokens
# Fields a check always writes that are no change to the token (``updated_at`` stays).
SWEEP_BOOKKEEPING = frozenset({"next_check_at", "last_checked_at", "claim_id", "claimed_until", "sweep_pending"})


def claim_tokens(
    token_ids: Sequence[int], run: SweepRun | None, now: datetime, claim: str
) -> list[AccessToken]:
    """Lease the chunk's tokens that are still to be handled; a duplicate chunk gets none of them.

    A lease is not a check: it says which chunk is working on the token until ``claimed_until``
    (the chunk's time limit and a margin). A token is free when it has no lease, its lease ran
    out (the worker died), or the lease is this very task's (Celery delivered the message again
    after a worker process died: same task id, new claim). In a run, only the run's pending
    tokens are taken, so a token is handled once per run however often its chunk is delivered.
    """
    lease_free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    task = claim.partition(":")[0]
    if task:
        lease_free |= Q(claim_id__startswith=f"{task}:")
    candidates = AccessToken.objects.filter(pk__in=list(token_ids), status__in=AccessToken.LIVE_STATUSES)
    if run is not None:
        candidates = candidates.filter(sweep_run_id=run.pk, sweep_pending=True)
    candidates = candidates.filter(lease_free)
    with transaction.atomic():
        if db_connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        # The value is read apart (ciphertexts): one unreadable ciphertext must not sink the chunk.
        tokens = list(candidates.defer("value").order_by("pk"))
        until = now + timedelta(seconds=settings.SWEEP_CHUNK_LEASE_SECONDS)
        AccessToken.objects.filter(pk__in=[token.pk for token in tokens]).update(claim_id=claim, claimed_until=until)
    _attach_parents(tokens)
    return tokens


def fence(tokens: list[AccessToken], run: SweepRun | None, claim: str) -> set[int]:
    """The claimed tokens whose lease is still this chunk's, locked until the chunk's write commits.

    A chunk that was only slow (its lease ran out and the reaper gave its tokens to another
    chunk) writes nothing for those: each token's outcome is written, and counted, once.
    """
    owned = AccessToken.objects.filter(
        pk__in=[token.pk for token in tokens], claim_id=claim, status__in=AccessToken.LIVE_STATUSES
    )
    if run is not None:
        owned = owned.filter(sweep_run_id=run.pk, sweep_pending=True)
    return set(owned.select_for_update().order_by("pk").values_list("pk", flat=True))  # one lock order


def new_claim(task_id: str | None) -> str:
    return f"{task_id or 'direct'}:{uuid.uuid4().hex}"


def _attach_parents(tokens: list[AccessToken]) -> None:
    """A Page token's end is its user token's (``ends_at``): read the parents in one query."""
    wanted = {token.parent_id for token in tokens if token.kind == AccessToken.Kind.PAGE and token.parent_id}
    if not wanted:
        return
    parents = AccessToken.objects.defer("value").in_bulk(list(wanted))
    for token in tokens:
        if token.parent_id in parents:
            token.parent = parents[token.parent_id]


def _business_ids(tokens: list[AccessToken]) -> dict[int, str]:
    """The client business of each token: X-Business-Use-Case-Usage is keyed by it."""
    rows = AccessToken.objects.filter(pk__in=[token.pk for token in tokens]).values_list(
        "pk", "client__meta_business_id"
    )
    return {pk: business_id for pk, business_id in rows if business_id}


def check_tokens(
    token_ids: Sequence[int],
    *,
    run_id: int | None = None,
    client=None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    task_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ChunkResult:
    """Check these tokens against Meta and store what changed. Safe to run twice, or to be
    delivered again after the worker died: what was handled is not asked again, what was not is."""
    now = now or timezone.now()
    run = SweepRun.objects.filter(pk=run_id).first() if run_id else None
    result = ChunkResult()
    claim = new_claim(task_id)
    tokens = claim_tokens(token_ids, run, now, claim)
    result.skipped = len(set(token_ids)) - len(tokens)
    if not tokens:
        if run is not None:
            result.finished_run = finish_if_done(run.pk)
        return result
    if client is None:
        from common.meta import graph_client

        client = graph_client()

    grants = _grants_by_token(tokens)
    answers = Answers()
    checks, coverage, throttled = answers.checks, answers.coverage, answers.throttled
    # No transaction is open while Meta is asked: the answers are written together afterwards.
    try:
        _ask(client, tokens, grants, answers, now, result, sleep=sleep, clock=clock)
    except SoftTimeLimitExceeded:
        logger.warning("Sweep chunk hit its soft time limit: the tokens not yet asked are deferred")
    # Whatever was not asked (out of time): due again by the next beat, still counted.
    out_of_time = TransientError("The chunk ran out of time before asking Meta.")
    for token in tokens:
        if token.pk not in checks:
            checks[token.pk] = TokenCheck(token)
            decisions.defer(checks[token.pk], out_of_time, now, result)

    with transaction.atomic():
        owned = fence(tokens, run, claim)
        if len(owned) < len(checks):
            _drop_lost(checks, owned, result)
        for check in checks.values():
            token = check.token
            if token.status not in AccessToken.LIVE_STATUSES:  # invalidated just now
                continue
            token_coverage = coverage.get(token.pk)
            token_grants = grants.get(token.pk, [])
            if token_coverage is not None:
                decisions.apply_coverage(check, token_grants, token_coverage, now, result)
            decisions.schedule(check, token_grants, now, result)
            if token.pk in throttled:
                decisions.throttled_business(check, throttled[token.pk], now, result)
        # The lease ends with the write, in the same statements. A check outside a run (staff's
        # "Check now") leaves a run's pending token to the run, which checks it again: the run's
        # figures stay those of its own checks.
        released = {"claim_id": "", "claimed_until": None} | ({"sweep_pending": False} if run is not None else {})
        for check in checks.values():
            for name, value in released.items():
                setattr(check.token, name, value)
            check.fields |= set(released)
        save(list(checks.values()), grants, result)
        result.handled = len(owned)
        record_outcomes(run, result)
    if run is not None:
        # After the commit: a chunk finishing at the same time sees this one's tokens handled.
        result.finished_run = finish_if_done(run.pk)
    return result


def _ask(client, tokens, grants, answers: Answers, now, result: ChunkResult, *, sleep, clock) -> None:
    """Ask Meta about the tokens, 50 at a time, filling ``checks`` (and what each covers).

    Stops asking (the rest are deferred, not failed) on a rate limit, on usage near the
    budget, after SWEEP_OUTAGE_BATCHES batches in a row that Meta did not answer at all, and
    once the chunk's time budget is spent.
    """
    checks = answers.checks
    stored = ciphertexts(tokens)
    businesses = _business_ids(tokens)
    stop: GraphError | None = None
    outages = 0
    stop_at = clock() + settings.SWEEP_CHUNK_BUDGET_SECONDS
    for start in range(0, len(tokens), META_BATCH):
        batch = tokens[start : start + META_BATCH]
        if stop is None and clock() > stop_at:
            stop = TransientError("The chunk ran out of time before asking Meta.")
        if stop is None:
            stop = _usage_stop(client, result, sleep)
        if stop is not None:
            for token in batch:
                checks[token.pk] = TokenCheck(token)
                decisions.defer(checks[token.pk], stop, now, result)
            continue
        # A business Meta throttled waits alone: its tokens are not asked about, the others are.
        busy = _busy_businesses(client)
        for token in [token for token in batch if businesses.get(token.pk) in busy]:
            checks[token.pk] = TokenCheck(token)
            decisions.defer(checks[token.pk], busy[businesses[token.pk]], now, result)
            result.business_throttled += 1
        batch = [token for token in batch if token.pk not in checks]
        if not batch:
            continue
        values = token_values(batch, stored)
        infos = client.debug_tokens([values[token.pk] for token in batch])
        unanswered = all(isinstance(info, TransientError) for info in infos)
        outages = outages + 1 if unanswered else 0
        valid = []
        for token, info in zip(batch, infos, strict=True):
            check = checks[token.pk] = TokenCheck(token)
            if isinstance(info, RateLimitError):
                stop = info
                decisions.defer(check, info, now, result)
            elif isinstance(info, GraphError):
                decisions.failed(check, info, now, result)
            elif not values[token.pk]:
                decisions.failed(check, TransientError("The stored token could not be decrypted."), now, result)
            elif not info.is_valid:
                if isinstance(info.error, InvalidTokenError):
                    decisions.invalidate(check, info.error, now, result)
                else:
                    error = info.error or TransientError("Meta said not valid, without a reason.")
                    decisions.failed(check, error, now, result)
            else:
                decisions.refresh(check, info, now, result)
                # A Page token covers its one Page: there is nothing more to read about it.
                if token.kind != AccessToken.Kind.PAGE:
                    valid.append(token)
        if valid and stop is None:
            read, limited = read_coverage(client, valid, values, grants, result)
            answers.coverage.update(read)
            answers.throttled.update(limited)
        if stop is None and outages >= settings.SWEEP_OUTAGE_BATCHES:
            # Meta is not answering at all: the rest wait for the next beat instead of a timeout each.
            stop = TransientError("Meta did not answer several batches in a row.")


def _drop_lost(checks: dict[int, TokenCheck], owned: set[int], result: ChunkResult) -> None:
    """Forget the tokens whose lease another chunk took over: that chunk writes and counts them."""
    lost = [pk for pk in checks if pk not in owned]
    for pk in lost:
        outcome = checks.pop(pk).outcome
        if outcome == "invalid":
            result.invalid -= 1
        elif outcome == "failed":
            result.errors -= 1
        elif outcome == "deferred":
            result.deferred -= 1
    result.lost += len(lost)
    result.events = [event for event in result.events if event.token.pk in owned]


def ciphertexts(tokens: list[AccessToken]) -> dict[int, bytes | None]:
    """The stored (encrypted) values of a chunk's tokens, in one query."""
    raw = (
        AccessToken.objects.filter(pk__in=[token.pk for token in tokens])
        .annotate(ciphertext=Cast("value", output_field=BinaryField()))
        .values_list("pk", "ciphertext")
    )
    return {pk: bytes(ciphertext) if ciphertext is not None else None for pk, ciphertext in raw}


def token_values(tokens: list[AccessToken], stored: dict[int, bytes | None]) -> dict[int, str]:
    """Decrypted values by id, a batch at a time; "" for a value no configured key can read
    (checked as a failure, never invalid)."""
    values = dict.fromkeys((token.pk for token in tokens), "")
    for token in tokens:
        ciphertext = stored.get(token.pk)
        try:
            values[token.pk] = crypto.decrypt(ciphertext) if ciphertext is not None else ""
        except TokenDecryptionError:
            logger.warning("Token %s: stored value unreadable with the configured keys", token.pk)
    return values


def _grants_by_token(tokens: list[AccessToken]) -> dict[int, list[GrantRow]]:
    grants: dict[int, list[GrantRow]] = {token.pk: [] for token in tokens}
    rows = AssetGrant.objects.filter(token_id__in=list(grants)).values_list(
        "pk", "token_id", "status", "user_access_expire_time", "scopes", "removed_at", "last_checked_at",
        "asset__kind", "asset__meta_id",
    )  # fmt: skip
    for row in rows:
        grant = GrantRow(*row)
        grants[grant.token_id].append(grant)
    return grants


def _busy_businesses(client) -> dict[str, RateLimitError]:
    """Businesses whose business-use-case usage reached the stop level, with how long to wait."""
    usage = client.usage
    busy = {}
    for business_id in usage.business:
        percent = usage.business_percent(business_id)
        if percent >= settings.SWEEP_USAGE_STOP_PERCENT:
            wait = usage.business_regain_seconds(business_id) or decisions.RATE_LIMIT_PAUSE.total_seconds()
            busy[business_id] = RateLimitError(f"Business at {percent:.0f}% of its budget", retry_after=wait)
    return busy


def _usage_stop(client, result: ChunkResult, sleep) -> GraphError | None:
    """Slow down as the app's platform usage approaches the budget; stop before it is spent.

    Only X-App-Usage counts here (every call shares it); a business's own usage holds back
    that business's tokens alone (``_busy_businesses``).
    """
    usage = client.usage
    percent = usage.app_percent()
    if percent >= settings.SWEEP_USAGE_STOP_PERCENT:
        # X-App-Usage says no time to wait: pause the default.
        return RateLimitError(f"Usage at {percent:.0f}% of Meta's budget", retry_after=None)
    if percent >= settings.SWEEP_USAGE_SLOWDOWN_PERCENT:
        # Linear from no pause at the threshold to 5 s a batch just below the stop level.
        span = max(settings.SWEEP_USAGE_STOP_PERCENT - settings.SWEEP_USAGE_SLOWDOWN_PERCENT, 1)
        pause = 5.0 * (percent - settings.SWEEP_USAGE_SLOWDOWN_PERCENT) / span
        result.requests_paused += pause
        sleep(pause)
    return None


def save(checks: list[TokenCheck], grants: dict[int, list[GrantRow]], result: ChunkResult) -> None:
    # Tokens grouped by what changed: on most days every token is in one group that only
    # moves last_checked_at and next_check_at (and ends the lease).
    groups: dict[frozenset[str], list[AccessToken]] = {}
    stamp = timezone.now()
    for check in checks:
        fields = check.fields
        if fields - SWEEP_BOOKKEEPING:
            check.token.updated_at = stamp
            fields = fields | {"updated_at"}
        if fields:
            groups.setdefault(frozenset(fields), []).append(check.token)
    for fields, members in groups.items():
        # The status condition keeps a token revoked meanwhile (deauthorize callback) revoked.
        bulk_set(members, sorted(fields), only_statuses=AccessToken.LIVE_STATUSES)
    changed = [grant for token_grants in grants.values() for grant in token_grants if grant.changed]
    grant_fields = ["status", "user_access_expire_time", "scopes", "last_checked_at", "removed_at"]
    bulk_set(changed, grant_fields, model=AssetGrant)
    new = [(check.token, ref, expires) for check in checks for ref, expires in check.new_grants]
    if new:
        _create_grants(new)
    if result.events:
        TokenEvent.objects.bulk_create(result.events, batch_size=500)
    # The connections of the clients whose tokens or grants changed, with these writes (D25).
    touched = {
        check.token.client_id for check in checks
        if check.fields - {"next_check_at"} or check.new_grants
        or any(grant.changed for grant in grants.get(check.token.pk, []))
    }
    if touched:
        health.refresh_clients(touched)
    invalid = [check.token.pk for check in checks if check.token.status == AccessToken.Status.INVALID]
    if invalid:
        tokens_invalidated.send(sender=AccessToken, token_ids=invalid)


def _create_grants(new: list[tuple[AccessToken, GrantedAsset, datetime | None]]) -> None:
    """New assets and grants in three statements whatever their number."""
    wanted = {(ref.kind, ref.meta_id): (token, ref) for token, ref, _ in new}
    Asset.objects.bulk_create(
        [
            Asset(kind=kind, meta_id=meta_id, name=ref.name, client_id=token.client_id)
            for (kind, meta_id), (token, ref) in wanted.items()
        ],
        ignore_conflicts=True,
    )
    stored = {
        (asset.kind, asset.meta_id): asset
        for asset in Asset.objects.filter(meta_id__in={meta_id for _, meta_id in wanted})
    }
    now = timezone.now()
    AssetGrant.objects.bulk_create(
        [
            AssetGrant(
                token=token,
                asset=stored[(ref.kind, ref.meta_id)],
                scopes=ref.scopes,
                user_access_expire_time=expires,
                status=decisions.grant_status(expires, now),
                last_checked_at=now,
            )
            for token, ref, expires in new
            if (ref.kind, ref.meta_id) in stored
        ],
        ignore_conflicts=True,
    )
