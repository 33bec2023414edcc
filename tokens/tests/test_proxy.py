"""The proxy's pieces without HTTP: a 190 marks a token once, throttle blocks per scope, no open transaction."""

from __future__ import annotations

import pytest
from django.db import transaction

from common import meta_throttle
from graph.errors import InvalidTokenError, RateLimitError
from testsupport.factories import make_asset, make_client, make_grant, make_token
from tokens.invalidation import invalidate_token
from tokens.models import AccessToken, TokenEvent
from tokens.proxy import ProxyCall, ProxyRefused, forward_call
from tokens.signals import tokens_invalidated

pytestmark = pytest.mark.django_db


def test_a_190_marks_a_live_token_invalid_audits_and_signals_it_exactly_once():
    token = make_token(client=make_client())
    heard = []

    def receiver(sender, token_ids, **kwargs):
        heard.append(token_ids)

    tokens_invalidated.connect(receiver)
    try:
        error = InvalidTokenError("Error validating access token: the session was invalidated", code=190, subcode=460)
        assert invalidate_token(token.pk, error, seen_by="Graph proxy") is True
        assert invalidate_token(token.pk, error, seen_by="Graph proxy") is False
    finally:
        tokens_invalidated.disconnect(receiver)
    token.refresh_from_db()
    assert (token.status, token.error_code, token.error_subcode) == (AccessToken.Status.INVALID, 190, 460)
    assert token.next_check_at is None
    assert heard == [[token.pk]]
    event = TokenEvent.objects.get(token=token)
    assert event.kind == TokenEvent.Kind.INVALIDATED and "Graph proxy" in event.message


def test_a_revoked_token_stays_revoked():
    token = make_token(client=make_client(), status=AccessToken.Status.REVOKED)
    assert invalidate_token(token.pk, InvalidTokenError("x", code=190), seen_by="Graph proxy") is False
    token.refresh_from_db()
    assert token.status == AccessToken.Status.REVOKED


def test_usage_and_throttling_errors_block_their_own_scope(settings):
    settings.API_PROXY_USAGE_STOP_PERCENT = 95
    settings.API_PROXY_THROTTLE_PAUSE_SECONDS = 60
    business = {
        "X-Business-Use-Case-Usage": '{"42":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":3}]}'
    }
    blocks = meta_throttle.blocks_from([business], [], business_id="42", ad_account_id=None, token_id=7)
    assert blocks == {"business:42": 180.0}
    app = {"X-App-Usage": '{"call_count":96,"total_time":1}'}
    assert meta_throttle.blocks_from([app], [], business_id="42", ad_account_id=None, token_id=7) == {"app": 60.0}
    ad = {"X-Ad-Account-Usage": '{"acc_id_util_pct":99,"reset_time_duration":120}'}
    assert meta_throttle.blocks_from([ad], [], business_id=None, ad_account_id="5", token_id=7) == {
        "ad_account:5": 120.0
    }
    user_limit = RateLimitError("(#17) User request limit reached", code=17, retry_after=None)
    assert meta_throttle.blocks_from([{}], [user_limit], business_id="42", ad_account_id=None, token_id=7) == {
        "token:7": 60.0
    }
    calm = {"X-App-Usage": '{"call_count":40}', **business}
    assert "app" not in meta_throttle.blocks_from([calm], [], business_id="42", ad_account_id=None, token_id=7)


def test_a_block_holds_until_its_time_and_a_shorter_one_does_not_shorten_it():
    meta_throttle.block({"business:42": 300}, now=1000.0)
    meta_throttle.block({"business:42": 10}, now=1000.0)
    assert meta_throttle.blocked(["app", "business:42"], now=1100.0) == pytest.approx(200.0)
    assert meta_throttle.blocked(["app", "business:43"], now=1100.0) is None


def test_the_proxy_refuses_to_call_meta_inside_a_transaction():
    client = make_client()
    token = make_token(client=client, kind=AccessToken.Kind.SYSTEM_USER)
    asset = make_asset(client)
    make_grant(token, asset)
    call = ProxyCall("GET", asset.meta_id, [], None, None, asset_meta_id=asset.meta_id)
    with transaction.atomic(), pytest.raises(RuntimeError, match="inside a database transaction"):
        forward_call(call, proxy_base="https://portal.test/api/v1/graph/")


def test_neither_asset_nor_client_is_refused_in_words():
    with pytest.raises(ProxyRefused) as refused:
        forward_call(ProxyCall("GET", "me", [], None, None), proxy_base="")
    assert (refused.value.status, refused.value.code) == (400, "asset_required")


def test_under_an_unchanged_marker_a_scope_is_read_once_and_a_block_anywhere_makes_it_read_again(
    redis_url, settings, monkeypatch
):
    """D93: the throttle's change marker comes with the API's rate limits; while it stays, what this
    process read of a scope holds, so a call costs no round trip for the throttle."""
    from django.core.cache import cache

    from common.ratelimit import count_and_read

    settings.CACHES = {"default": {"BACKEND": "common.cache.RedisCache", "LOCATION": redis_url}}
    reads = []

    class Counted:
        def get_many(self, keys):
            reads.append(list(keys))
            return cache.get_many(keys)

        def __getattr__(self, name):
            return getattr(cache, name)

    monkeypatch.setattr(meta_throttle, "cache", Counted())

    def marker() -> str:
        return count_and_read([], (meta_throttle.CHANGED,))[1][meta_throttle.CHANGED]

    scopes = ["app", "business:42"]
    assert meta_throttle.blocked(scopes, now=1000.0, generation=marker()) is None
    assert meta_throttle.blocked(scopes, now=1001.0, generation=marker()) is None
    assert len(reads) == 1  # the second call read nothing
    assert meta_throttle.blocked(["app", "token:7"], now=1001.0, generation=marker()) is None
    assert reads[-1] == [meta_throttle._key("token:7")]  # only the scope not read yet

    meta_throttle.block({"business:42": 300}, now=1000.0)  # as another process learns it from Meta
    reads.clear()
    assert meta_throttle.blocked(scopes, now=1100.0, generation=marker()) == pytest.approx(200.0)
    assert len(reads) == 1  # read again under the new marker
    assert meta_throttle.blocked(scopes, now=1350.0, generation=marker()) is None  # over, by time alone
    assert len(reads) == 1
