"""Meta's documented error payloads (docs/meta.md, "Errors") classify as callers need."""

from __future__ import annotations

import pytest

from graph.errors import (
    GraphError,
    InvalidTokenError,
    OtherGraphError,
    PermissionDeniedError,
    RateLimitError,
    TransientError,
    classify_error,
)


def meta_error(code, subcode=None, message="", *, status=400, **extra):
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "A1b2C3d4", **extra}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


DOCUMENTED = [
    # (payload, http status, expected class)
    (meta_error(190, 463, "Error validating access token: Session has expired on Tuesday, 14-Oct-26."), 400,
     InvalidTokenError),
    (meta_error(190, 460, "Error validating access token: The session has been invalidated because the user "
                "changed their password."), 400, InvalidTokenError),
    (meta_error(190, 458, "Error validating access token: The user has not authorized application 1234."), 400,
     InvalidTokenError),
    (meta_error(190, 467, "Invalid OAuth access token."), 400, InvalidTokenError),
    (meta_error(190, 492, "Invalid session."), 400, InvalidTokenError),
    (meta_error(102, None, "Session key invalid or no longer valid"), 400, InvalidTokenError),
    (meta_error(10, None, "(#10) Application does not have permission for this action"), 403, PermissionDeniedError),
    (meta_error(200, None, "(#200) Permissions error"), 403, PermissionDeniedError),
    (meta_error(299, None, "(#299) Requires ads_management permission"), 400, PermissionDeniedError),
    (meta_error(4, None, "(#4) Application request limit reached", is_transient=True), 400, RateLimitError),
    (meta_error(17, None, "(#17) User request limit reached", is_transient=True), 400, RateLimitError),
    (meta_error(32, None, "(#32) Page request limit reached"), 400, RateLimitError),
    (meta_error(613, None, "(#613) Calls to this api have exceeded the rate limit."), 400, RateLimitError),
    (meta_error(80004, 2446079, "There have been too many calls to this ad-account. Wait a bit and try again.",
                error_user_title="Ad Account Has Too Many API Calls"), 400, RateLimitError),
    (meta_error(80000, None, "There have been too many calls from this ad-account."), 400, RateLimitError),
    (meta_error(80014, None, "Too many catalog batch calls."), 400, RateLimitError),
    (meta_error(368, None, "The action attempted has been deemed abusive or is otherwise disallowed"), 400,
     RateLimitError),
    (meta_error(1, None, "An unknown error has occurred."), 500, TransientError),
    (meta_error(2, None, "An unexpected error has occurred. Please retry your request later.", is_transient=True),
     503, TransientError),
    (meta_error(100, None, "Temporary failure", is_transient=True), 400, TransientError),
    (meta_error(100, 33, "Unsupported get request. Object with ID '1' does not exist"), 400, OtherGraphError),
]


@pytest.mark.parametrize(("payload", "status", "expected"), DOCUMENTED)
def test_documented_error_payloads_classify_to_the_class_callers_act_on(payload, status, expected):
    error = classify_error(payload, status)

    assert type(error) is expected
    assert error.code == payload["error"]["code"]
    assert error.subcode == payload["error"].get("error_subcode")
    assert error.message == payload["error"]["message"]
    assert error.http_status == status


def test_every_field_meta_sends_is_kept():
    payload = meta_error(
        190, 460, "Password changed", error_user_title="Session expired", error_user_msg="Please log in again."
    )

    error = classify_error(payload, 400)

    assert error.as_dict() == {
        "code": 190,
        "subcode": 460,
        "type": "OAuthException",
        "fbtrace_id": "A1b2C3d4",
        "message": "Password changed",
        "user_title": "Session expired",
        "user_message": "Please log in again.",
        "http_status": 400,
        "is_transient": False,
    }


def test_an_invalid_token_error_says_whether_it_expired_or_the_app_was_removed():
    assert classify_error(meta_error(190, 463), 400).is_expired
    assert not classify_error(meta_error(190, 463), 400).is_app_removed
    assert classify_error(meta_error(190, 458), 400).is_app_removed


def test_a_rate_limit_error_carries_the_wait_it_was_given():
    error = classify_error(meta_error(80004), 400, retry_after=300.0)

    assert isinstance(error, RateLimitError)
    assert error.retry_after == 300.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_without_json_is_transient(status):
    assert type(classify_error(None, status)) is TransientError


def test_http_429_without_a_code_is_a_rate_limit():
    assert type(classify_error("Too Many Requests", 429)) is RateLimitError


def test_the_code_decides_before_the_http_status():
    assert type(classify_error(meta_error(190, 463), 500)) is InvalidTokenError


def test_an_oauth_error_given_as_a_string_is_kept_as_the_message():
    error = classify_error({"error": "invalid_request"}, 400)

    assert type(error) is OtherGraphError
    assert error.message == "invalid_request"


def test_secrets_meta_echoes_back_are_scrubbed_from_the_messages():
    payload = meta_error(190, None, "Malformed access token EAAB-secret-token", error_user_msg="EAAB-secret-token bad")

    error = classify_error(payload, 400, secrets=["EAAB-secret-token"])

    for text in (str(error), repr(error), error.message, error.user_message):
        assert "EAAB-secret-token" not in text


def test_all_typed_errors_are_graph_errors():
    for cls in (InvalidTokenError, PermissionDeniedError, RateLimitError, TransientError, OtherGraphError):
        assert issubclass(cls, GraphError)
