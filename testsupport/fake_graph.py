"""An in-memory Meta for unit tests: answers the ``GraphClient`` methods the portal calls.

Use it where a test scripts Meta's answers (a code exchange, what ``debug_token`` says, which
assets a token reaches, a failure of one call). Everything over HTTP (the dialog, batches as
Meta encodes them, headers, faults, the clock) is the simulator's job (``simulated_meta``).

What Meta knows lives in ``tokens``: value -> ``FakeToken`` (its ``pages`` are the Page tokens
``/me/accounts`` hands out; answer each of those values with a ``FakeToken(type="PAGE", ...)``). A code exchange returns
``token_value``; ``token`` is that token's ``FakeToken``. ``fail_on`` makes a named method
raise; ``debug_failures`` / ``coverage_failures`` fail one token's batch item. ``calls`` lists
the methods called, ``requests`` the HTTP requests Meta would have counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from graph.edges import SYSTEM_USER_EDGES, USER_EDGES
from graph.errors import GraphError, InvalidTokenError
from graph.types import AssetRef, PageToken, TokenGrant, TokenInfo
from graph.usage import Usage

APP_ID = "100000000000001"  # settings.META_APP_ID's default
EDGE_KINDS = {edge.name: edge.kind for edge in USER_EDGES + SYSTEM_USER_EDGES}


@dataclass
class FakeToken:
    """What Meta says about one token: ``debug_token``'s fields and the assets its edges list."""

    type: str = "USER"
    is_valid: bool = True
    expires_at: datetime | None = None
    data_access_expires_at: datetime | None = None
    error: GraphError | None = None  # what debug_token says is wrong (inside data)
    assets: dict[str, tuple[str, str, datetime | None]] = field(default_factory=dict)  # id -> (kind, name, ends)
    granular_scopes: list[dict] = field(default_factory=list)
    scopes: list[str] = field(default_factory=lambda: ["pages_show_list"])
    user_id: str = "42"
    app_id: str = APP_ID
    issued_at: datetime | None = None
    business_id: str | None = None  # the business that owns the assets (list_assets' business_id)
    pages: dict[str, str] = field(default_factory=dict)  # Page id -> the Page token /me/accounts hands out
    profile_id: str | None = None  # a Page token's Page

    def info(self) -> TokenInfo:
        return TokenInfo(
            app_id=self.app_id,
            type=self.type,
            application="Portal",
            is_valid=self.is_valid,
            issued_at=self.issued_at,
            expires_at=self.expires_at,
            data_access_expires_at=self.data_access_expires_at,
            scopes=list(self.scopes),
            granular_scopes=self.granular_scopes,
            user_id=self.user_id,
            profile_id=self.profile_id,
            error=self.error,
        )

    def asset_refs(self) -> list[AssetRef]:
        return [
            AssetRef(kind, meta_id, name, meta_id if kind == "business" else self.business_id)
            for meta_id, (kind, name, _) in self.assets.items()
        ]


class FakeGraph:
    app_token = f"{APP_ID}|app-secret"

    def __init__(self) -> None:
        self.tokens: dict[str, FakeToken] = {}
        self.token_value = "EAAB-fake-token-value-0001"
        self.me: dict[str, Any] = {"id": "9001", "client_business_id": "7001"}
        self.fail_on: dict[str, GraphError] = {}  # method name -> error it raises
        self.debug_failures: dict[str, GraphError] = {}  # value -> error for its debug_token item
        self.coverage_failures: dict[str, GraphError] = {}  # value -> error for its coverage item
        self.calls: list[str] = []
        self.revoked: list[str] = []  # token values whose app permissions were removed
        self.system_user_value = "EAAB-fake-system-user-token-0001"  # what token management hands out
        self.requests = 0
        self.usage_percent = 0.0

    @property
    def token(self) -> FakeToken:
        """The token the next code exchange hands out."""
        return self.tokens[self.token_value]

    def answer(self, token: FakeToken, value: str | None = None) -> FakeToken:
        """From now on Meta says this about ``value`` (default: the token the exchange hands out)."""
        self.tokens[value or self.token_value] = token
        return token

    def _called(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail_on:
            raise self.fail_on[name]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    @property
    def usage(self) -> Usage:
        return Usage(app={"call_count": self.usage_percent})

    def appsecret_proof(self, token: str) -> dict[str, str]:
        return {"appsecret_proof": "proof"}

    def dialog_url(self, config_id, redirect_uri, state, *, response_type_code=False, extras=None) -> str:
        params = {"client_id": APP_ID, "redirect_uri": redirect_uri, "state": state, "config_id": config_id}
        if response_type_code:
            params |= {"response_type": "code", "override_default_response_type": "true"}
        return "https://dialog.test/v26.0/dialog/oauth?" + urlencode(params)

    def exchange_code(self, code, redirect_uri) -> TokenGrant:
        self._called("exchange_code")
        return TokenGrant(access_token=self.token_value, token_type="bearer", expires_in=None)

    def exchange_long_lived(self, token) -> TokenGrant:
        self._called("exchange_long_lived")
        return TokenGrant(access_token=self.token_value, token_type="bearer", expires_in=5184000)

    def get_me(self, token, fields=("id", "name")) -> dict[str, Any]:
        self._called("get_me")
        return self.me

    def list_assets(self, token, *, system_user_id=None) -> list[AssetRef]:
        self._called("list_assets")
        known = self.tokens.get(token)
        return known.asset_refs() if known else []

    def page_tokens(self, token) -> list[PageToken]:
        self._called("page_tokens")
        known = self.tokens.get(token)
        if known is None:
            return []
        names = {meta_id: name for meta_id, (_, name, _) in known.assets.items()}
        return [PageToken(page_id, names.get(page_id, ""), value) for page_id, value in known.pages.items()]

    def debug_token(self, value: str) -> TokenInfo:
        self._called("debug_token")
        return self._inspect(value)

    def debug_tokens(self, values: list[str]) -> list[TokenInfo | GraphError]:
        self.calls.append("debug_tokens")
        self.requests += math.ceil(len(values) / 50)
        return [self.debug_failures.get(value) or self._inspect(value) for value in values]

    def _inspect(self, value: str) -> TokenInfo:
        known = self.tokens.get(value)
        if known is None:
            return FakeToken(
                is_valid=False, error=InvalidTokenError("Invalid OAuth access token.", code=190, subcode=467)
            ).info()
        return known.info()

    def batch(self, envelope: str, items, secrets=()) -> list:
        """Answers the sweep's coverage items: each item's own token, its asset edges by field expansion."""
        self.calls.append("batch")
        self.requests += math.ceil(len(items) / 50)
        answers = []
        for item in items:
            value = dict(parse_qsl(item.as_json()["body"]))["access_token"]
            if value in self.coverage_failures:
                answers.append(self.coverage_failures[value])
                continue
            token = self.tokens[value]
            answer: dict[str, Any] = {"id": "42"}
            for edge in (name for name in EDGE_KINDS if name in item.relative_url):
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

    def system_user_token(self, business_id, token, system_user_id, *, fetch_only=False, assets=None, scopes=None,
                          expires_in_60_days=False) -> str:
        self._called("system_user_token")
        return self.system_user_value

    def revoke_permissions(self, token: str, user_id: str = "me") -> bool:
        self._called("revoke_permissions")
        self.revoked.append(token)
        return True
