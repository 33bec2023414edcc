"""What every Graph request goes through before it is answered: latency, hangs, the edge,
bursts, counting, faults.

`views.graph` hands each HTTP request here; a batch goes to `batch`, anything else to
`endpoints.execute`.
"""

from __future__ import annotations

import time

from . import batch, core, faults
from .endpoints import Call, Reply, execute, fault_reply


def serve(call: Call) -> Reply:
    """One HTTP request: latency, counting, faults, then the call itself (or a batch)."""
    with core.request_memo():
        return _serve(call)


def _serve(call: Call) -> Reply:
    current = core.state()
    memo = core.current_memo()
    if memo is not None:
        memo.clock_offset = current.clock_offset_seconds  # core.now() needn't read the row again
    if current.latency_ms:
        time.sleep(current.latency_ms / 1000)
    is_batch = batch.is_batch(call)
    faults.maybe_hang(current, is_batch=is_batch)
    edge = faults.edge_failure(current)
    if edge is not None:  # never reached Graph: not a call
        status, page, headers = edge
        return Reply(status, None, headers, html=page)
    burst = faults.in_burst(current)
    at = core.now()
    if is_batch:
        return batch.run_batch(call, current, at, throttled=burst)
    # `?ids=a,b,c` counts as three calls (a malformed list is refused later, in route()).
    calls = len([part for part in call.params.get("ids", "").split(",") if part.strip()]) or 1
    current = core.record_calls(calls, at)
    fault = "rate_limit" if burst else core.draw_fault(current)
    if fault:
        return fault_reply(fault, call, current)
    return execute(call, at, current)
