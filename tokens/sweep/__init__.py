"""Health sweep: is every token still valid, when does it end, and what does it still cover?

The beat task (``start_health_sweep``) only gives the due tokens to a run (``sweep_run``,
``sweep_pending``), moves their ``next_check_at`` to the run's deadline (so an overlapping sweep
skips them) and enqueues chunks of ids. A chunk (``check_tokens``) runs anywhere:

- ``debug_token`` for every token through ``client.debug_tokens`` (Graph batches of 50);
- what each token covers, one batch item per token carrying that token in the item body:
  field expansion of the asset edges with ``user_access_expire_time`` for user tokens
  (``me?fields=accounts{...},adaccounts{...},businesses{...}``), the ``assigned_*`` edges
  of the system user for system-user tokens. HTTP requests grow with tokens/50 (plus
  pages of very long edges), not with assets;
- then every change is written in a few bulk statements: queries per chunk are constant.

A chunk leases its tokens (``claim_id``, ``claimed_until``: a lease, not a check) and writes
their outcomes only where the lease is still its own, clearing ``sweep_pending`` and counting
in the run in the same transaction: a chunk delivered twice, or two workers on overlapping
chunks, change and count nothing twice, and a redelivery after a worker died asks Meta about
what was not handled. ``last_checked_at`` moves only when Meta answered about the token. The
reaper (``reap``, beat) hands orphaned leases to new chunks and closes or fails overdue runs.
Only an ``InvalidTokenError`` (190/102) marks a token invalid; transient errors and rate
limits only move the next check; rate limits (and usage headers near the budget) stop the
chunk and push the remaining tokens back.

Modules: ``runs`` (a sweep's bookkeeping: start, progress, finish), ``chunk`` (checking a
chunk: claim, ask Meta, write), ``decisions`` (what one answer means for one token),
``coverage`` (reading Meta's asset edges), ``state`` (what a chunk carries while it runs).
"""

from .chunk import check_tokens
from .runs import Reaped, finish_if_done, reap, record_chunk_failure, start_sweep
from .state import ChunkResult

__all__ = ["ChunkResult", "Reaped", "check_tokens", "finish_if_done", "reap", "record_chunk_failure", "start_sweep"]
