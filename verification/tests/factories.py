"""Small factories for the verification tests."""

from __future__ import annotations

import itertools

from onboarding.models import ClientBusiness, Contact
from tokens.models import AccessToken
from verification.models import TechProviderVerification

_seq = itertools.count(1)


def make_record(status: str = "not_required", is_provider: bool = True, **fields) -> TechProviderVerification:
    """A record put straight into a status (tests of change_status start from any status)."""
    n = next(_seq)
    record = TechProviderVerification.objects.create(
        name=fields.pop("name", f"Business {n}"), meta_business_id=f"7{n:08d}", is_provider=is_provider, **fields
    )
    TechProviderVerification.objects.filter(pk=record.pk).update(status=status)
    record.refresh_from_db()
    return record


def make_client(name: str | None = None) -> ClientBusiness:
    n = next(_seq)
    return ClientBusiness.objects.create(name=name or f"Client {n}", meta_business_id=f"9{n:08d}", status="active")


def make_token(client=None, scopes=("ads_read",), kind="user", meta_user_id="", status="active", **fields):
    n = next(_seq)
    token = AccessToken.objects.create(
        client=client or make_client(),
        kind=kind,
        value=f"EAAtest{n:012d}",
        scopes=list(scopes),
        meta_user_id=meta_user_id,
        **fields,
    )
    if status != "active":
        AccessToken.objects.filter(pk=token.pk).update(status=status)
        token.refresh_from_db()
    return token


def make_contact(client, meta_user_id: str) -> Contact:
    n = next(_seq)
    return Contact.objects.create(client=client, email=f"person{n}@client.test", meta_user_id=meta_user_id)
