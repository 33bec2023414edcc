"""What staff should do about an error from Meta, in words (never Meta's payload).

The admin shows these sentences when an action that talks to Meta fails; Meta's own message,
its trace id and the request stay in the logs. One table, by code and subcode, so every action
gives the same advice for the same answer.
"""

from __future__ import annotations

from .errors import (
    SUBCODE_APP_NOT_INSTALLED,
    SUBCODE_CHECKPOINTED,
    SUBCODE_EXPIRED,
    SUBCODE_PASSWORD_CHANGED,
    GraphError,
    PermissionDeniedError,
    RateLimitError,
    TransientError,
)

RECONNECT = "send the client a reconnect link"

BY_CODE: dict[int, str] = {
    3962: "These assets or permissions are not in the client's current grant (or the system user is not our "
          f"app's in that business): ask them to reconnect and select them, or {RECONNECT}.",
    452: f"The client's business integration token was revoked or has expired: {RECONNECT}.",
    341: "Meta has temporarily blocked these calls: wait an hour before trying again.",
    368: "Meta has temporarily blocked this account for policy reasons: wait, then try again; the client may "
         "need to check their account quality in Meta Business Suite.",
    100: "Meta rejected the request as malformed: the asset or id may no longer exist. Check the client's "
         "assets, then tell the developers if it happens again.",
}

BY_SUBCODE_OF_190: dict[int, str] = {
    SUBCODE_EXPIRED: f"The token has expired: {RECONNECT}.",
    SUBCODE_PASSWORD_CHANGED: f"The person changed their Facebook password, which ended the token: {RECONNECT}.",
    SUBCODE_APP_NOT_INSTALLED: f"The client removed our app, so the token no longer works: {RECONNECT} "
                               "if they want to come back.",
    SUBCODE_CHECKPOINTED: "Meta locked the person's account (a security checkpoint): they must log in to "
                          f"Facebook and clear it, then reconnect; {RECONNECT}.",
}


def staff_advice(error: GraphError) -> str:
    """One sentence: what happened at Meta, and what staff do next."""
    if error.code in BY_CODE:
        return BY_CODE[error.code]
    if error.code == 190 or error.code == 102:
        return BY_SUBCODE_OF_190.get(error.subcode or 0, f"Meta says the token no longer works: {RECONNECT}.")
    if isinstance(error, RateLimitError):
        wait = error.retry_after
        when = f"in about {max(1, round(wait / 60))} minute(s)" if wait else "later"
        return f"Meta is limiting how fast we call it: nothing was changed; try again {when}."
    if isinstance(error, PermissionDeniedError):
        return ("The token lacks a permission this needs (the client declined it, or it was removed): "
                f"{RECONNECT} so they grant every permission asked.")
    if isinstance(error, TransientError):
        return "Meta could not be reached or had a temporary problem: nothing was changed; try again in a few minutes."
    code = f" (Meta error {error.code})" if error.code else ""
    return f"Meta refused the request{code}: nothing was changed. If it happens again, tell the developers."
