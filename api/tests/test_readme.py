"""The README's Python example, run as it is written against the live API."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.models import Scope
from onboarding.models import ClientBusiness
from testsupport.factories import make_asset, make_client, make_grant, make_token

pytestmark = pytest.mark.django_db(transaction=True)
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    section = README.read_text().split("## The provider's API (for its services)", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_gets_a_working_token_and_the_reason_when_there_is_none(
        api_base, credential_factory, monkeypatch):
    acme = make_client()
    token = make_token(acme, kind="system_user")
    make_grant(token, make_asset(acme, meta_id="100200300"))
    _, secret = credential_factory("Publisher", [Scope.TOKENS_READ])
    monkeypatch.setenv("PORTAL_URL", api_base)
    monkeypatch.setenv("PORTAL_API_SECRET", secret)
    namespace = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)

    assert len(readme_example().strip().splitlines()) <= 15
    assert namespace["working_token"]("100200300") == token.value
    ClientBusiness.objects.filter(pk=acme.pk).update(status=ClientBusiness.Status.OFFBOARDED)
    with pytest.raises(LookupError) as refused:
        namespace["working_token"]("100200300", purpose="publishing")
    assert refused.value.args[0] == "client_offboarded"
