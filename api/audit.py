"""Every use of a credential is recorded (docs/decisions.md D42): who, which endpoint, about which client
and asset, the answer, when. Never a token, a secret or a query string.

Endpoints say what the request is about with ``about(request, client_id=..., asset_meta_id=...)``;
``api.urls`` records the use once the response exists (successes and refusals alike, one INSERT).
A request that never showed a known credential (401) is not recorded here: there is nobody to
attribute it to (the access log has it).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from common import rows
from common.logs import current_request_id

from . import credentials
from .models import ApiUse

logger = logging.getLogger(__name__)
PRUNE_BATCH = 5000  # rows per DELETE: each statement short, whatever the backlog


def about(request, *, client_id: int | None = None, asset_meta_id: str | None = None) -> None:
    if client_id is not None:
        request.api_client_id = client_id
    if asset_meta_id is not None:
        request.api_asset_meta_id = str(asset_meta_id)[:64]


def record(request, response, action: str) -> bool:
    """Write the use's row (one INSERT, D90); False when the request showed no known credential."""
    credential = getattr(request, "api_credential", None)
    if credential is None:
        return False
    status = response.status_code
    outcome = "ok" if status < 400 else getattr(request, "api_outcome", "") or "error"
    now = timezone.now()
    rows.insert(ApiUse, {
        "credential_id": credential.pk, "action": action[:60], "method": request.method[:8],
        "client_id": getattr(request, "api_client_id", None),
        "asset_meta_id": getattr(request, "api_asset_meta_id", ""), "status_code": status, "outcome": outcome[:40],
        "request_id": (current_request_id() or "")[:64], "at": now,
    })  # fmt: skip
    # A use the API answered (a success, or a 409 "no token works"): the credential's last-used time.
    if status < 400 or status == 409:
        credentials.note_use(credential, now)
    return True


def prune(now: datetime | None = None) -> int:
    """Delete uses older than API_USE_RETENTION_DAYS, in batches (beat, daily). Returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.API_USE_RETENTION_DAYS)
    deleted = 0
    while ids := list(ApiUse.objects.filter(at__lt=cutoff).order_by("at").values_list("pk", flat=True)[:PRUNE_BATCH]):
        deleted += ApiUse.objects.filter(pk__in=ids).delete()[0]
    return deleted
