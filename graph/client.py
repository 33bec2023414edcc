"""The Graph API client: everything the portal knows about Meta goes through here.

Rules this module keeps (docs/architecture.md, "graph/ (the client)"):
- secrets never travel in a URL: the token rides in ``Authorization: OAuth <token>``,
  ``client_secret``/``code``/``fb_exchange_token`` in POST bodies, ``input_token`` inside a
  batch item (the POST body);
- ``appsecret_proof`` (and ``appsecret_time`` in the timestamped form) on every call made
  with a token;
- no token, secret or code in an exception message, a repr or a log line;
- retries only where they are safe, with exponential backoff and full jitter, bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import certifi
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from graph.edges import SYSTEM_USER_EDGES, USER_EDGES
from graph.errors import (
    GraphError,
    InvalidTokenError,
    OtherGraphError,
    PermissionDeniedError,
    RateLimitError,
    TransientError,
    classify_error,
)
from graph.forward import Answer, Outgoing, add_proof, read_answer, redact
from graph.hooks import CallRecord, notify_call, notify_calls
from graph.types import (
    AssetRef,
    BatchItem,
    PageToken,
    TokenGrant,
    TokenInfo,
    numeric_id,
    parse_graph_datetime,
    str_or_none,
)
from graph.usage import Usage, UsageTracker, regain_access_seconds_from

logger = logging.getLogger(__name__)

BATCH_LIMIT = 50  # Meta refuses batches of more than 50 items
IDS_LIMIT = 50  # ids per ?ids= request, so one failure or one slow answer stays small
PROOF_MODES = ("plain", "timestamped")
OWNED_KINDS = frozenset({"page", "ad_account"})  # user-edge assets whose owning business list_assets asks

_VERSION_RE = re.compile(r"^v\d+(\.\d+)?$")
_MARKETING_SEGMENTS = frozenset(
    {
        "ads", "adsets", "campaigns", "insights", "adcreatives", "customaudiences", "adspixels",
        "adaccounts", "assigned_ad_accounts", "owned_ad_accounts", "client_ad_accounts",
    }
)
_ASSET_EDGES = frozenset(
    {
        "accounts", "businesses", "assigned_pages", "assigned_whatsapp_business_accounts",
        "assigned_product_catalogs", "owned_pages", "client_pages", "owned_whatsapp_business_accounts",
        "client_whatsapp_business_accounts", "owned_product_catalogs", "client_product_catalogs",
    }
)
# No (complete) answer from Meta: worth retrying.
_UNREACHABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    # The same, from urllib3 itself (the proxy's forwarded calls, D90).
    urllib3.exceptions.TimeoutError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.DecodeError,
    urllib3.exceptions.SSLError,
    urllib3.exceptions.ProxyError,
)
# Query parameters that must never be copied from a URL Meta hands back (paging.next).
_SECRET_PARAMS = frozenset({"access_token", "appsecret_proof", "appsecret_time", "client_secret", "code"})


def _segments(path: str) -> list[str]:
    segments = [s for s in urlsplit(path).path.strip("/").split("/") if s]
    if segments and _VERSION_RE.match(segments[0]):
        segments = segments[1:]
    return segments


def is_marketing_path(path: str) -> bool:
    """A Marketing API call: ad accounts (``act_``), ads, ad sets, campaigns, insights..."""
    return any(s.startswith("act_") or s in _MARKETING_SEGMENTS for s in _segments(path))


def call_family(path: str) -> str:
    """The endpoint family the call ledger counts by (never contains an id)."""
    segments = _segments(path)
    if not segments:
        return "assets"  # /?ids=...: field expansion over many assets
    if segments[0] == "oauth":
        return "oauth"
    if segments[0] == "debug_token":
        return "debug_token"
    if "system_user_access_tokens" in segments:
        return "system_user_access_tokens"
    if segments[-1] == "permissions":
        return "permissions"
    if is_marketing_path(path):
        return "ads"
    if segments[-1] in _ASSET_EDGES:
        return "assets"
    if segments[0] == "me":
        return "me"
    return "object"


# --- The client -------------------------------------------------------------------------------


_PROXY_SETTINGS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def follow_environment(session: requests.Session) -> None:
    """What the environment says of proxies and CA bundles, applied to ``session`` (D90).

    A session that trusts the environment reads every variable of it (and ~/.netrc) on every
    request, about 1 ms of CPU per call. When no proxy is named, the only thing to follow is a CA
    bundle (``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``, as requests picks them), read here
    once; with a proxy (and its ``NO_PROXY`` exceptions) requests reads the environment as always.
    """
    if any(name.lower() in _PROXY_SETTINGS for name in os.environ):
        session.trust_env = True
        return
    session.trust_env = False
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle


class GraphClient:
    def __init__(
        self,
        app_id: str,
        app_secret: str,
        version: str = "v26.0",
        graph_url: str = "https://graph.facebook.com",
        dialog_url: str = "https://www.facebook.com",
        proof_mode: str = "plain",
        timeout: float = 20.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        *,
        connect_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        pool_maxsize: int = 10,
    ) -> None:
        if proof_mode not in PROOF_MODES:
            raise ValueError(f"proof_mode must be one of {PROOF_MODES}, not {proof_mode!r}")
        self.app_id = str(app_id)
        self._app_secret = app_secret
        self.version = version
        self.graph_url = graph_url.rstrip("/")
        self._dialog_url = dialog_url.rstrip("/")
        self.proof_mode = proof_mode
        # Connecting should be quick; reading may legitimately take a while (big batches).
        self.timeout = (connect_timeout if connect_timeout is not None else min(timeout, 5.0), timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._usage = UsageTracker()
        self._direct: urllib3.PoolManager | None = None
        self._graph_path = urlsplit(self.graph_url).path.rstrip("/")
        if session is None:
            session = requests.Session()
            # Our own retry loop decides what is safe to retry; urllib3 must not retry behind it.
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_maxsize, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            follow_environment(session)
            # The proxy's forwarded calls go straight to urllib3 (requests' own layer cost more CPU
            # than the call itself, D90) unless a proxy must be followed: that is requests' job.
            if not session.trust_env:
                self._direct = urllib3.PoolManager(
                    num_pools=2, maxsize=pool_maxsize, retries=False, timeout=urllib3.Timeout(timeout),
                    ca_certs=session.verify if isinstance(session.verify, str) else certifi.where(),
                )  # fmt: skip
        self.session = session

    def __repr__(self) -> str:
        return f"GraphClient(app_id={self.app_id!r}, version={self.version!r}, graph_url={self.graph_url!r})"

    def close(self) -> None:
        self.session.close()
        if self._direct is not None:
            self._direct.clear()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def usage(self) -> Usage:
        return self._usage.snapshot()

    @property
    def app_token(self) -> str:
        return f"{self.app_id}|{self._app_secret}"

    # --- proofs and URLs ----------------------------------------------------------------------

    def appsecret_proof(self, token: str) -> dict[str, str]:
        """The proof parameters for a call made with ``token``, in the configured form."""
        key = self._app_secret.encode()
        if self.proof_mode == "timestamped":
            now = str(int(self._clock()))
            proof = hmac.new(key, f"{token}|{now}".encode(), hashlib.sha256).hexdigest()
            return {"appsecret_proof": proof, "appsecret_time": now}
        return {"appsecret_proof": hmac.new(key, token.encode(), hashlib.sha256).hexdigest()}

    def dialog_url(
        self,
        config_id: str,
        redirect_uri: str,
        state: str,
        *,
        response_type_code: bool = False,
        extras: dict[str, Any] | None = None,
    ) -> str:
        """Facebook Login for Business dialog. A configuration replaces ``scope``."""
        params: dict[str, str] = {
            "client_id": self.app_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "config_id": str(config_id),
        }
        if response_type_code:
            params["response_type"] = "code"
            params["override_default_response_type"] = "true"
        if extras:
            params["extras"] = json.dumps(extras, separators=(",", ":"))
        return f"{self._dialog_url}/{self.version}/dialog/oauth?{urlencode(params)}"

    def _url(self, path: str) -> str:
        return f"{self.graph_url}/{self.version}/{path.lstrip('/')}"

    # --- one call, with retries -----------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        safe: bool = True,
        secrets: Sequence[str] = (),
        notify: bool = True,
        multipart: bool = False,
    ) -> Any:
        """Send one Graph call, retrying transient errors and rate limits where safe.

        ``safe`` is False for calls Meta may have acted on even when we saw no answer
        (the code exchange, creating a token): those are retried only when the request
        provably never reached Meta or Meta itself said to retry.
        """
        attempt = 0
        while True:
            try:
                return self._send(
                    method, path, token=token, params=params, data=data, secrets=secrets, notify=notify,
                    multipart=multipart,
                )  # fmt: skip
            except GraphError as error:
                delay = self._retry_delay(error, attempt, safe)
                if delay is None:
                    raise
                logger.info(
                    "Graph %s %s failed (%s), retry %d in %.2fs",
                    method, call_family(path), type(error).__name__, attempt + 1, delay,
                )
                self._sleep(delay)
                attempt += 1

    def _retry_delay(self, error: GraphError, attempt: int, safe: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, RateLimitError):
            backoff = self._backoff(attempt)
            wait = error.retry_after or 0.0
            if wait > self.backoff_cap:
                return None  # Meta said "not for a while": the caller reschedules rather than block
            return max(backoff, wait)
        if isinstance(error, TransientError):
            meta_said_retry = error.code in (1, 2) or error.is_transient
            if safe or meta_said_retry or not error.request_may_have_arrived:
                wait = error.retry_after or 0.0  # an edge's Retry-After (a 503 from a proxy)
                if wait > self.backoff_cap:
                    return None  # the caller reschedules by it rather than block
                return max(self._backoff(attempt), wait)
        return None

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter (uniform in [0, min(cap, base * 2**attempt)])."""
        return self._jitter() * min(self.backoff_cap, self.backoff_base * (2**attempt))

    def _send(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        params: dict[str, Any] | None,
        data: dict[str, Any] | None,
        secrets: Sequence[str],
        notify: bool,
        multipart: bool = False,
    ) -> Any:
        method = method.upper()
        params = dict(params or {})
        body = dict(data) if data is not None else None
        headers = {"Accept": "application/json"}
        all_secrets = [s for s in (token, self._app_secret, *secrets) if s]
        if token:
            headers["Authorization"] = f"OAuth {token}"
            proof = self.appsecret_proof(token)
            if body is not None:
                body.update(proof)
            else:
                params.update(proof)
        family = call_family(path)
        marketing = is_marketing_path(path)
        files = None
        if multipart and body is not None:
            # multipart/form-data, as Meta's batch examples send it (curl -F): the fields go as they
            # are, where form encoding would quote 50 items of JSON a character at a time.
            files, body = {key: (None, str(value)) for key, value in body.items()}, None
        try:
            response = self.session.request(
                method,
                self._url(path),
                params=params or None,
                data=body,
                files=files,
                headers=headers,
                timeout=self.timeout,
            )
        except _UNREACHABLE as exc:
            error = TransientError(
                f"Could not reach Meta ({type(exc).__name__})", code=None, http_status=0, is_transient=False
            )
            # A refused or timed-out connection never reached Meta; anything later might have.
            error.request_may_have_arrived = not _never_reached_meta(exc)
            logger.debug("Graph %s %s: no response (%s)", method, family, type(exc).__name__)
            if notify:
                notify_call(CallRecord(family=family, http_status=0, error_code=None, is_marketing=marketing))
            raise error from None
        except requests.RequestException as exc:  # a malformed URL or similar: our configuration, not Meta
            raise OtherGraphError(f"Could not send the request ({type(exc).__name__})") from None
        self._usage.update(response.headers)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        status = response.status_code
        error = None
        if status >= 400 or (isinstance(payload, dict) and "error" in payload):
            error = classify_error(
                payload, status, retry_after=regain_access_seconds_from(response.headers), secrets=all_secrets
            )
        elif payload is None:
            error = OtherGraphError("Meta sent a response that is not JSON", http_status=status)
        logger.debug(
            "Graph %s %s -> %s%s", method, family, status, f" error {error.code}/{error.subcode}" if error else ""
        )
        if notify:
            notify_call(
                CallRecord(
                    family=family,
                    http_status=status,
                    error_code=error.code if error else None,
                    is_marketing=marketing,
                )
            )
        if error:
            raise error
        return payload

    # --- pass-through (the portal's Graph proxy) --------------------------------------------------

    def forward(self, outgoing: Outgoing, token: str, *, proxy_base: str = "") -> Answer:
        """Send a caller's request as it came (``graph.forward.prepare``), with ``token`` and its proof.

        One attempt, no retry: the caller gets Meta's answer and decides (a retried POST could
        act twice). The usage headers update ``usage``; the hook hears one record per call, one per
        answered batch item. Access tokens in the answer are taken out (``graph.forward.redact``;
        paging links are pointed at ``proxy_base``). No answer at all raises ``TransientError``.
        """
        query, body, content_type = add_proof(outgoing, self.appsecret_proof(token))
        headers = {"Authorization": f"OAuth {token}", "Accept-Encoding": "gzip, deflate"}
        if content_type:
            headers["Content-Type"] = content_type
        url = f"{self.graph_url}/{outgoing.path}"
        try:
            if self._direct is not None:
                # Straight to the pool of Meta's host: the manager would parse the whole URL again
                # before the pool parses its target (measured: 4% of a proxied call's CPU).
                target = f"{self._graph_path}/{outgoing.path}"
                if query:
                    target = f"{target}{'&' if '?' in target else '?'}{urlencode(query)}"
                response = self._direct.connection_from_url(self.graph_url).urlopen(
                    outgoing.method, target, body=body, headers=headers, redirect=False, assert_same_host=False,
                )  # fmt: skip
                status, response_headers, content = response.status, response.headers, response.data
            else:
                response = self.session.request(
                    outgoing.method, url, params=query or None, data=body, headers=headers, timeout=self.timeout,
                    allow_redirects=False,
                )  # fmt: skip
                status, response_headers, content = response.status_code, response.headers, response.content
        except _UNREACHABLE as exc:
            urls = [str(item.get("relative_url") or "") for item in outgoing.batch or ()] or [outgoing.path]
            notify_calls([CallRecord(call_family(url), 0, None, is_marketing_path(url)) for url in urls])
            raise TransientError(
                f"Could not reach Meta ({type(exc).__name__})", code=None, http_status=0, is_transient=False
            ) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise OtherGraphError(f"Could not send the request ({type(exc).__name__})") from None
        answer = read_answer(
            outgoing, status, response_headers, content,
            family_of=call_family, is_marketing=is_marketing_path, secrets=[token, self._app_secret],
        )  # fmt: skip
        for headers in answer.usage:
            self._usage.update(headers)
        notify_calls(answer.records)
        redact(answer, outgoing, [token, self._app_secret], f"{self.graph_url}/", proxy_base or f"{self.graph_url}/")
        logger.debug("Graph proxy %s %s -> %s", outgoing.method, call_family(outgoing.path), answer.status)
        return answer

    # --- batch ----------------------------------------------------------------------------------

    def batch(
        self, token: str, items: Sequence[BatchItem], *, secrets: Sequence[str] = ()
    ) -> list[dict[str, Any] | list[Any] | GraphError]:
        """Any number of items, sent 50 per request; one result per item, in order.

        Each result is the item's parsed JSON body or its typed error: a failed item never
        fails the batch. Items Meta left unfinished (``null``) and items that failed
        transiently are sent again, just those, with backoff. When a whole request fails
        transiently its items get that error and the next chunk still runs; on a rate
        limit the remaining items get the error without being sent (stop calling). An
        invalid or unauthorised envelope token raises: it says nothing about the items.
        """
        results: list[Any] = [None] * len(items)
        stop: GraphError | None = None
        for start in range(0, len(items), BATCH_LIMIT):
            indexes = list(range(start, min(start + BATCH_LIMIT, len(items))))
            if stop is not None:
                for index in indexes:
                    results[index] = stop
                continue
            try:
                self._batch_chunk(token, items, indexes, results, secrets)
            except (RateLimitError, TransientError) as error:
                for index in indexes:
                    if results[index] is None:
                        results[index] = error
                if isinstance(error, RateLimitError):
                    stop = error
        return results

    def _batch_chunk(
        self,
        token: str,
        items: Sequence[BatchItem],
        indexes: list[int],
        results: list[Any],
        secrets: Sequence[str],
    ) -> None:
        pending = indexes
        attempt = 0
        while pending:
            chunk = [items[i] for i in pending]
            safe = all(item.method.upper() == "GET" for item in chunk)
            try:
                answer = self._call(
                    "POST",
                    "",
                    token=token,
                    data={"batch": json.dumps([item.as_json() for item in chunk]), "include_headers": "true"},
                    safe=safe,
                    secrets=secrets,
                    notify=False,
                    multipart=True,
                )
            except GraphError as error:
                notify_calls(  # the ledger counts each item Meta was asked to do
                    [
                        CallRecord(
                            family=call_family(item.relative_url),
                            http_status=error.http_status,
                            error_code=error.code,
                            is_marketing=is_marketing_path(item.relative_url),
                        )
                        for item in chunk
                    ]
                )
                raise
            if not isinstance(answer, list) or len(answer) != len(pending):
                raise TransientError("Meta answered a batch with the wrong number of results", http_status=200)
            still_pending = []
            records: list[CallRecord] = []
            retry_allowed = attempt < self.max_retries
            for index, item, outcome in zip(pending, chunk, answer, strict=True):
                if outcome is None:
                    still_pending.append(index)
                    continue
                result, record = self._batch_result(item, outcome, [token, *secrets])
                records.append(record)
                if isinstance(result, TransientError) and retry_allowed and (safe or result.is_transient):
                    still_pending.append(index)
                    continue
                results[index] = result
            notify_calls(records)
            pending = still_pending
            if pending:
                if not retry_allowed:
                    for index in pending:
                        results[index] = TransientError("Meta did not finish this batch item", http_status=0)
                    return
                delay = self._backoff(attempt)
                logger.info("Graph batch: %d item(s) unfinished, retry %d in %.2fs", len(pending), attempt + 1, delay)
                self._sleep(delay)
                attempt += 1

    def _batch_result(self, item: BatchItem, outcome: Any, secrets: Sequence[str]) -> tuple[Any, CallRecord]:
        """The item's body or typed error, and the record of the call for the ledger."""
        family = call_family(item.relative_url)
        marketing = is_marketing_path(item.relative_url)
        if not isinstance(outcome, dict):
            error = OtherGraphError("Meta sent a batch result that is not an object", http_status=200)
            return error, CallRecord(family=family, http_status=200, error_code=None, is_marketing=marketing)
        status = int(outcome.get("code") or 0)
        headers = {
            str(h.get("name")): str(h.get("value"))
            for h in outcome.get("headers") or []
            if isinstance(h, dict) and h.get("name")
        }
        self._usage.update(headers)
        raw = outcome.get("body")
        try:
            body = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            body = None
        error = None
        if status >= 400 or (isinstance(body, dict) and "error" in body):
            error = classify_error(
                body, status, retry_after=regain_access_seconds_from(headers), secrets=[self._app_secret, *secrets]
            )
        elif body is None:
            error = OtherGraphError("Meta sent a batch result that is not JSON", http_status=status)
        code = error.code if error else None
        return error or body, CallRecord(family=family, http_status=status, error_code=code, is_marketing=marketing)

    # --- pagination -------------------------------------------------------------------------------

    def paginate(self, token: str, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a list edge, following ``paging.cursors.after`` (or ``paging.next``).

        Meta's ``paging.next`` URL carries the access token in its query string, so it is
        never fetched as is: its path and its other parameters are reused, with the token
        in the header as for every call.
        """
        params = dict(params or {})
        seen_cursors: set[str] = set()
        while True:
            page = self._call("GET", path, token=token, params=params)
            if not isinstance(page, dict):
                return
            yield from page.get("data") or []
            paging = page.get("paging") or {}
            if not paging.get("next"):
                return
            after = (paging.get("cursors") or {}).get("after")
            if after:
                if after in seen_cursors:
                    return
                seen_cursors.add(after)
                params = {**params, "after": after}
                params.pop("before", None)
                continue
            path, params = self._follow_next(str(paging["next"]))

    def _follow_next(self, next_url: str) -> tuple[str, dict[str, str]]:
        ours = urlsplit(self.graph_url)
        theirs = urlsplit(next_url)
        if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
            raise OtherGraphError("paging.next points away from the Graph API host")
        path = theirs.path
        if ours.path and path.startswith(ours.path):
            path = path[len(ours.path) :]
        segments = [s for s in path.strip("/").split("/") if s]
        if segments and _VERSION_RE.match(segments[0]):
            segments = segments[1:]
        params = {k: v for k, v in parse_qsl(theirs.query, keep_blank_values=True) if k not in _SECRET_PARAMS}
        return "/".join(segments), params

    # --- named calls --------------------------------------------------------------------------

    def exchange_code(self, code: str, redirect_uri: str | None) -> TokenGrant:
        """Code -> token, server to server. Codes are single use, so this is not blindly retried."""
        data = {"client_id": self.app_id, "client_secret": self._app_secret, "code": code}
        if redirect_uri is not None:  # the JS SDK flow has none; the manual flow must match exactly
            data["redirect_uri"] = redirect_uri
        payload = self._call("POST", "oauth/access_token", data=data, safe=False, secrets=[code])
        return self._token_grant(payload)

    def exchange_long_lived(self, user_token: str) -> TokenGrant:
        data = {
            "grant_type": "fb_exchange_token",
            "client_id": self.app_id,
            "client_secret": self._app_secret,
            "fb_exchange_token": user_token,
        }
        payload = self._call("POST", "oauth/access_token", data=data, secrets=[user_token])
        return self._token_grant(payload)

    @staticmethod
    def _token_grant(payload: Any) -> TokenGrant:
        if not isinstance(payload, dict) or not payload.get("access_token"):
            raise OtherGraphError("Meta's token answer has no access_token")
        expires_in = payload.get("expires_in")
        return TokenGrant(
            access_token=str(payload["access_token"]),
            token_type=payload.get("token_type"),
            expires_in=int(expires_in) if str(expires_in or "").isdigit() else None,
        )

    def debug_token(self, input_token: str) -> TokenInfo:
        """Inspect one token with the app token. Raises only if Meta refused the inspection."""
        result = self.debug_tokens([input_token])[0]
        if isinstance(result, GraphError):
            raise result
        return result

    def debug_tokens(self, input_tokens: Sequence[str]) -> list[TokenInfo | GraphError]:
        """Inspect many tokens: one batch request per 50 tokens, one result per token, in order.

        An invalid token is a ``TokenInfo`` with ``is_valid=False`` and ``error`` set (Meta
        answers 200); a ``GraphError`` in the list means that item could not be inspected.
        """
        items = [BatchItem("GET", "debug_token?" + urlencode({"input_token": t})) for t in input_tokens]
        secrets = [self.app_token, *input_tokens]
        results = self.batch(self.app_token, items, secrets=secrets)
        return [
            r if isinstance(r, GraphError) else TokenInfo.from_response(r, secrets=secrets) for r in results
        ]

    def get_me(self, token: str, fields: Sequence[str] = ("id", "name")) -> dict[str, Any]:
        return self._call("GET", "me", token=token, params={"fields": ",".join(fields)})

    def list_assets(self, token: str, *, system_user_id: str | None = None) -> list[AssetRef]:
        """The assets a token reaches, edge by edge (``graph.edges``), with their ids and names.

        System-user tokens: the ``assigned_*`` edges of the system user. User tokens:
        ``/me/accounts`` (Pages), ``/me/adaccounts``, ``/me/businesses``. Ad accounts come
        back as ``act_<n>``; ``meta_id`` keeps the bare number (see ``AssetRef``). An edge
        refused for a missing permission is skipped: the token was not granted that kind.
        """
        if system_user_id:
            edges = [(edge.kind, f"{system_user_id}/{edge.name}", edge.fields, None) for edge in SYSTEM_USER_EDGES]
        else:
            # A person may belong to several businesses: each Page and ad account says which one
            # owns it (``business``), so the portal can tell which business was connected (D70).
            edges = [
                (edge.kind, f"me/{edge.name}", edge.fields,
                 f"{edge.fields},business" if edge.kind in OWNED_KINDS else None)
                for edge in USER_EDGES
            ]
        assets: list[AssetRef] = []
        for kind, path, fields, with_owner in edges:
            try:
                try:
                    items = list(self.paginate(token, path, {"fields": with_owner or fields}))
                except PermissionDeniedError:
                    if not with_owner:
                        raise
                    # Meta may refuse the owner for want of business_management: the assets still count.
                    items = list(self.paginate(token, path, {"fields": fields}))
            except PermissionDeniedError as error:
                logger.info("Graph %s: edge refused (%s), skipped", kind, error.code)
                continue
            for item in items:
                if not isinstance(item, dict) or not item.get("id"):
                    continue
                meta_id = numeric_id(item.get("account_id") or item["id"])
                business = item.get("business") if isinstance(item.get("business"), dict) else {}
                assets.append(
                    AssetRef(
                        kind=kind,
                        meta_id=meta_id,
                        name=str(item.get("name") or ""),
                        business_id=meta_id if kind == "business" else str_or_none(business.get("id")),
                    )
                )
        return assets

    def page_tokens(self, token: str) -> list[PageToken]:
        """The Page token of every Page a user (or system-user) token reaches (``/me/accounts``).

        The tokens come back in the answer's body only; like every token they never enter a
        URL, a log line or an error message.
        """
        pages = []
        for item in self.paginate(token, "me/accounts", {"fields": "id,name,access_token"}):
            if isinstance(item, dict) and item.get("id") and item.get("access_token"):
                pages.append(PageToken(str(item["id"]), str(item.get("name") or ""), str(item["access_token"])))
        return pages

    def asset_access_expiry(
        self, token: str, asset_ids: Iterable[str]
    ) -> dict[str, datetime | None | GraphError]:
        """``user_access_expire_time`` for many assets: ``GET /?ids=a,b,c&fields=...``, 50 ids a call.

        Keys are the ids as asked (ad accounts must be asked as ``act_<n>``, see ``graph_id``);
        every id asked gets a value: the time the person's access ends, None (no end known,
        or Meta did not mention the id), or the error of the request that covered it. After
        a rate limit or an invalid token nothing more is sent.
        """
        ids = list(dict.fromkeys(str(i) for i in asset_ids))
        result: dict[str, datetime | None | GraphError] = {}
        stop: GraphError | None = None
        for start in range(0, len(ids), IDS_LIMIT):
            chunk = ids[start : start + IDS_LIMIT]
            if stop is not None:
                result.update(dict.fromkeys(chunk, stop))
                continue
            try:
                answer = self._call(
                    "GET", "", token=token, params={"ids": ",".join(chunk), "fields": "user_access_expire_time"}
                )
            except GraphError as error:
                result.update(dict.fromkeys(chunk, error))
                if isinstance(error, RateLimitError | InvalidTokenError):
                    stop = error
                continue
            answer = answer if isinstance(answer, dict) else {}
            for asset_id in chunk:
                node = answer.get(asset_id)
                result[asset_id] = (
                    parse_graph_datetime(node.get("user_access_expire_time")) if isinstance(node, dict) else None
                )
        return result

    def system_user_token(
        self,
        business_id: str,
        token: str,
        system_user_id: str,
        *,
        fetch_only: bool = False,
        assets: Sequence[str] | None = None,
        scopes: Sequence[str] | None = None,
        expires_in_60_days: bool = False,
    ) -> str:
        """Meta's token management endpoint for business integration system users.

        ``fetch_only`` reads the existing token; otherwise a (granular) token is made from a
        subset of the original's ``assets`` and ``scopes``, optionally expiring in 60 days.
        Returns the token; never logs it.
        """
        data: dict[str, str] = {"system_user_id": str(system_user_id)}
        if fetch_only:
            data["fetch_only"] = "true"
        if assets:
            data["asset"] = ",".join(str(a) for a in assets)
        if scopes:
            data["scope"] = ",".join(scopes)
        if expires_in_60_days:
            data["set_token_expires_in_60_days"] = "true"
        payload = self._call(
            "POST", f"{business_id}/system_user_access_tokens", token=token, data=data, safe=fetch_only
        )
        if not isinstance(payload, dict) or not payload.get("access_token"):
            raise OtherGraphError("Meta's token management answer has no access_token")
        return str(payload["access_token"])

    def revoke_permissions(self, token: str, user_id: str = "me") -> bool:
        """Remove the app for the person (``DELETE /{user}/permissions``)."""
        payload = self._call("DELETE", f"{user_id}/permissions", token=token)
        if isinstance(payload, dict):
            return bool(payload.get("success"))
        return bool(payload)


def _never_reached_meta(exc: requests.RequestException) -> bool:
    """True when the request provably never left us (connect timeout or refused connection)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None  # urllib3's MaxRetryError, when there is one
    return isinstance(getattr(reason, "reason", None), NewConnectionError)

