"""An in-memory Meta for sweep unit tests: answers the GraphClient methods the sweep uses.

The simulator (over real HTTP) is used by the scenario tests; this fake keeps the logic
tests fast and lets them script any answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl

from graph.errors import GraphError, InvalidTokenError
from graph.types import TokenInfo
from graph.usage import Usage

EDGE_KINDS = {
    "accounts": "page",
    "adaccounts": "ad_account",
    "businesses": "business",
    "assigned_pages": "page",
    "assigned_ad_accounts": "ad_account",
    "assigned_whatsapp_business_accounts": "whatsapp_business_account",
    "assigned_product_catalogs": "catalog",
}


@dataclass
class FakeToken:
    type: str = "USER"
    is_valid: bool = True
    expires_at: datetime | None = None
    data_access_expires_at: datetime | None = None
    error: GraphError | None = None  # what debug_token says is wrong (inside data)
    assets: dict[str, tuple[str, str, datetime | None]] = field(default_factory=dict)  # id -> (kind, name, ends)
    granular_scopes: list[dict] = field(default_factory=list)


class FakeGraph:
    app_token = "1234|app-secret"

    def __init__(self) -> None:
        self.tokens: dict[str, FakeToken] = {}
        self.debug_failures: dict[str, GraphError] = {}  # value -> error for its batch item
        self.coverage_failures: dict[str, GraphError] = {}
        self.requests = 0
        self.usage_percent = 0.0

    @property
    def usage(self) -> Usage:
        return Usage(app={"call_count": self.usage_percent})

    def appsecret_proof(self, token: str) -> dict[str, str]:
        return {"appsecret_proof": "proof"}

    def debug_tokens(self, values: list[str]) -> list[TokenInfo | GraphError]:
        self.requests += math.ceil(len(values) / 50)
        answers = []
        for value in values:
            if value in self.debug_failures:
                answers.append(self.debug_failures[value])
                continue
            token = self.tokens.get(value) or FakeToken(
                is_valid=False, error=InvalidTokenError("Invalid OAuth access token.", code=190, subcode=467)
            )
            answers.append(
                TokenInfo(
                    app_id="1234",
                    type=token.type,
                    application="Portal",
                    is_valid=token.is_valid,
                    issued_at=None,
                    expires_at=token.expires_at,
                    data_access_expires_at=token.data_access_expires_at,
                    scopes=["pages_show_list"],
                    granular_scopes=token.granular_scopes,
                    user_id="42",
                    error=token.error,
                )
            )
        return answers

    def batch(self, envelope: str, items, secrets=()) -> list:
        self.requests += math.ceil(len(items) / 50)
        answers = []
        for item in items:
            value = dict(parse_qsl(item.as_json()["body"]))["access_token"]
            if value in self.coverage_failures:
                answers.append(self.coverage_failures[value])
                continue
            token = self.tokens[value]
            edges = [e for e in EDGE_KINDS if e in item.relative_url]
            answer = {"id": "42"}
            for edge in edges:
                rows = [
                    {"id": f"act_{i}" if kind == "ad_account" else i, "account_id": i, "name": name}
                    | ({"user_access_expire_time": ends.strftime("%Y-%m-%dT%H:%M:%S+0000")} if ends else {})
                    for i, (kind, name, ends) in token.assets.items()
                    if kind == EDGE_KINDS[edge]
                ]
                if rows:
                    answer[edge] = {"data": rows}
            answers.append(answer)
        return answers
