"""The API against its own OpenAPI schema, fuzzed by schemathesis through the live server (D45).

Every endpoint registered in ``api.main`` is a test case of its own (the proxy, health and reconnect
routers are covered the moment they are added): bounded examples, derandomized, a world with an
asset whose id is the schema's example, a credential with every scope, the simulator standing in
for Meta. Each answer must be no 5xx, a documented status, content type, headers and body, and
invalid input must be refused.
"""

from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.credentials import create_credential
from api.main import api
from api.models import Scope
from testsupport.factories import make_asset, make_client, make_grant, make_token

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 25  # per endpoint and phase: enough to reach every parameter's edges, a few seconds each
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth]

schema = schemathesis.openapi.from_dict(api.get_openapi_schema())


@pytest.fixture
def fuzz_secret(simulated_meta, settings) -> str:
    """A credential with every scope, and the schema's example asset with a working token."""
    settings.RATE_LIMITS_ENABLED = False  # the fuzzer is about answers, not volume
    acme = make_client()
    page = make_asset(acme, "Acme Page", meta_id="100200300")
    make_grant(make_token(acme, kind="system_user"), page)
    _, secret = create_credential("Fuzzer", Scope.values)
    return secret


def test_the_live_schema_is_the_one_fuzzed(live_server, postgres_required):
    served = requests.get(f"{live_server.url}/api/v1/openapi.json", timeout=30).json()
    assert served == json.loads(json.dumps(api.get_openapi_schema()))
    assert served["paths"], "no endpoint registered"


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_every_endpoint_answers_as_its_schema_says(case, fuzz_secret, live_server, postgres_required):
    case.call_and_validate(base_url=live_server.url, headers={"Authorization": f"Bearer {fuzz_secret}"},
                           checks=CHECKS, timeout=30)
