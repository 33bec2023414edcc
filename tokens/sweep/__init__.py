"""Health sweep: is every token still valid, when does it end, and what does it still cover?

The beat task (``start_health_sweep``) only picks the due token ids, moves their
``next_check_at`` forward (a claim, so an overlapping sweep skips them) and enqueues
chunks of ids. A chunk (``check_tokens``) runs anywhere:

- ``debug_token`` for every token through ``client.debug_tokens`` (Graph batches of 50);
- what each token covers, one batch item per token carrying that token in the item body:
  field expansion of the asset edges with ``user_access_expire_time`` for user tokens
  (``me?fields=accounts{...},adaccounts{...},businesses{...}``), the ``assigned_*`` edges
  of the system user for system-user tokens. HTTP requests grow with tokens/50 (plus
  pages of very long edges), not with assets;
- then every change is written in a few bulk statements: queries per chunk are constant.

A chunk that runs twice, or two workers on overlapping chunks, changes nothing twice:
each token is claimed by a conditional ``UPDATE ... WHERE last_checked_at < run start``.
Only an ``InvalidTokenError`` (190/102) marks a token invalid; transient errors and rate
limits only move the next check; rate limits (and usage headers near the budget) stop the
chunk and push the remaining tokens back.

Modules: ``runs`` (a sweep's bookkeeping: start, progress, finish), ``chunk`` (checking a
chunk: claim, ask Meta, write), ``decisions`` (what one answer means for one token),
``coverage`` (reading Meta's asset edges), ``state`` (what a chunk carries while it runs).
"""

from .chunk import check_tokens
from .runs import finish_sweep, record_chunk_failure, start_sweep
from .state import ChunkResult

__all__ = ["ChunkResult", "check_tokens", "finish_sweep", "record_chunk_failure", "start_sweep"]
