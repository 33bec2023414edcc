"""What Meta tells us on its own: deauthorize, data deletion, webhooks. Views verify, these act."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from graph.errors import GraphError
from tokens import install
from tokens.events import record_event
from tokens.models import AccessToken

from .models import ClientBusiness, Contact, DataDeletionRequest, Invitation, LoginAttempt, WebhookDelivery

logger = logging.getLogger(__name__)


class WebhookPayloadError(ValueError):
    """The body is signed by Meta but not something we understand."""


def _user_hash(meta_user_id: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"data-deletion:{meta_user_id}".encode(), hashlib.sha256).hexdigest()


@transaction.atomic
def deauthorize(meta_user_id: str) -> int:
    """The person removed our app: revoke their tokens. Returns how many were revoked."""
    revoked = install.revoke_tokens_for_user(str(meta_user_id), actor="meta")
    return len(revoked)


@transaction.atomic
def delete_user_data(meta_user_id: str) -> DataDeletionRequest:
    """Purge the person's tokens and personal data; the returned request has the confirmation code."""
    meta_user_id = str(meta_user_id)
    tokens = AccessToken.objects.filter(meta_user_id=meta_user_id) | AccessToken.objects.filter(
        granted_by__meta_user_id=meta_user_id
    )
    client_ids = set(tokens.values_list("client_id", flat=True))
    token_ids = set(tokens.values_list("pk", flat=True))
    purged = install.purge_user_data(meta_user_id, actor="meta")
    contacts = Contact.objects.filter(meta_user_id=meta_user_id)
    Invitation.objects.filter(contact__in=contacts).update(email="")
    LoginAttempt.objects.filter(token_id__in=token_ids).update(user_agent="")
    contacts_removed, _ = contacts.delete()
    now = timezone.now()
    found = purged or contacts_removed
    request = DataDeletionRequest.objects.create(
        confirmation_code=secrets.token_hex(8),
        user_hash=_user_hash(meta_user_id),
        status=DataDeletionRequest.Status.COMPLETED if found else DataDeletionRequest.Status.NOTHING_FOUND,
        tokens_purged=purged,
        contacts_removed=contacts_removed,
        requested_at=now,
        completed_at=now,
    )
    for client_id in client_ids:
        record_event(
            "data_deleted",
            client=ClientBusiness.objects.get(pk=client_id),
            actor="meta",
            message=f"Data deletion request {request.confirmation_code} completed.",
            data={"confirmation_code": request.confirmation_code},
        )
    return request


# --- webhooks -------------------------------------------------------------------------------


def _changes(payload: dict):
    for entry in payload.get("entry") or []:
        if not isinstance(entry, dict):
            raise WebhookPayloadError("An entry is not an object.")
        changes = entry.get("changes") or []
        if not isinstance(changes, list):
            raise WebhookPayloadError("An entry's changes are not a list.")
        for change in changes:
            if not isinstance(change, dict) or not isinstance(change.get("field"), str):
                raise WebhookPayloadError("A change has no field.")
            value = change.get("value")
            yield entry, change["field"], value if isinstance(value, dict) else {}


def _contains_nul(value) -> bool:
    """Whether a NUL is anywhere in this JSON value: PostgreSQL stores none in text or jsonb."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


def parse_webhook(raw_body: bytes) -> dict:
    try:
        payload = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WebhookPayloadError("The body is not JSON.")
    if not isinstance(payload, dict) or not isinstance(payload.get("entry", []), list):
        raise WebhookPayloadError("The body is not a webhook notification.")
    try:
        has_nul = _contains_nul(payload)
    except RecursionError:
        raise WebhookPayloadError("The body is nested too deeply.")
    if has_nul:
        raise WebhookPayloadError("The body contains a NUL character.")
    list(_changes(payload))  # validate the shape before anything is stored
    return payload


def receive_webhook(raw_body: bytes, graph_factory=None) -> tuple[bool, dict]:
    """Process a verified webhook body once. Returns (was it new, what we did).

    The delivery row and the effects commit together, so a failure leaves the body
    unrecorded and Meta's retry is processed; a retry of a processed body changes nothing.
    Re-reading a business's assets asks Meta, so it runs after that commit, outside any
    transaction (each token's new grants are written in a transaction of their own); a Graph
    failure there is left to the lifecycle sweep.
    """
    payload = parse_webhook(raw_body)
    body_hash = hashlib.sha256(raw_body).hexdigest()
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                body_hash=body_hash,
                object_type=str(payload.get("object") or "")[:64],
                fields=sorted({field for _, field, _ in _changes(payload)}),
            )
            summary, to_refresh = _handle(payload)
            delivery.summary = summary
            delivery.save(update_fields=["summary"])
    except IntegrityError:
        WebhookDelivery.objects.filter(body_hash=body_hash).update(duplicates=F("duplicates") + 1)
        return False, {}
    if to_refresh:
        summary["refreshed"] = sum(_refresh_business(business_id, graph_factory) for business_id in to_refresh)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(summary=summary)
    return True, summary


def _handle(payload: dict) -> tuple[dict, list[str]]:
    """Apply what needs no call to Meta; returns the summary and the businesses whose assets to re-read."""
    summary: dict[str, int] = {"revoked": 0, "refreshed": 0, "grants_marked": 0, "installs": 0, "ignored": 0}
    to_refresh: list[str] = []
    for entry, field, value in _changes(payload):
        if field == "business_integration_uninstall":
            business_id = str(value.get("business_manager_id") or value.get("business_id") or "")
            config_id = value.get("tp_config_id") or value.get("config_id")
            revoked = install.revoke_tokens_for_business(
                business_id, config_id=str(config_id) if config_id else None, actor="meta"
            )
            summary["revoked"] += len(revoked)
        elif field == "business_integration_install":
            business_id = str(value.get("business_manager_id") or value.get("business_id") or "")
            client = ClientBusiness.objects.filter(meta_business_id=business_id).first() if business_id else None
            if client is not None:
                record_event(
                    "staff_action", client=client, actor="meta", message="Meta reports the integration installed."
                )
            summary["installs"] += 1
        elif field == "business_integration_update":
            business_id = str(value.get("business_manager_id") or value.get("business_id") or "")
            if business_id and business_id not in to_refresh:
                to_refresh.append(business_id)
        elif payload.get("object") == "permissions" or value.get("verb") in ("granted", "revoked"):
            if value.get("verb") == "revoked":
                user_id = str(entry.get("uid") or entry.get("id") or "")
                targets = value.get("target_ids")
                targets = [str(target) for target in targets] if isinstance(targets, list) else None
                grants = install.revoke_permission(user_id, field, target_ids=targets, actor="meta")
                summary["grants_marked"] += len(grants)
        else:
            summary["ignored"] += 1
    return summary, to_refresh


def _refresh_business(business_id: str, graph_factory) -> int:
    if not business_id:
        return 0
    tokens = AccessToken.objects.filter(
        client__meta_business_id=business_id, status__in=AccessToken.LIVE_STATUSES
    ).exclude(kind__in=AccessToken.DERIVED_KINDS)
    if not tokens:
        return 0
    if graph_factory is None:
        from common.meta import graph_client as graph_factory
    graph = graph_factory()
    refreshed = 0
    for token in tokens:
        try:
            install.refresh_token_assets(token, graph, actor="meta")
            refreshed += 1
        except GraphError as error:
            # The lifecycle sweep re-reads assets too; a Graph hiccup must not lose the delivery.
            logger.warning("Could not re-read assets of token %s after a webhook: %s", token.pk, error.code)
    return refreshed
