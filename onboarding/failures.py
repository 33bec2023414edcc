"""What a person sees when a step fails: one entry per ``LoginAttempt.failure_kind``.

Plain words, what happened and what to do next, marked for translation. The templates add
"try again" and the support links.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Failure:
    title: str  # lazily translated text
    explanation: str
    next_step: str
    can_retry: bool = True


FAILURES: dict[str, Failure] = {
    "user_cancelled": Failure(
        _("You cancelled the connection"),
        _("Nothing was connected and nothing was shared with us."),
        _("If you cancelled by mistake, start again and choose Allow at the end of Facebook's window."),
    ),
    "access_denied": Failure(
        _("Facebook did not give us access"),
        _("Access was declined in Facebook's window, so nothing was connected."),
        _("Start again and accept every permission listed: we can't work with only some of them."),
    ),
    "invalid_config": Failure(
        _("This connection link is set up wrongly"),
        _("Facebook did not recognise the configuration this link uses. This is a problem on our side, not yours."),
        _("Please contact our support team; we'll send you a corrected link."),
        can_retry=False,
    ),
    "wrong_response_type": Failure(
        _("This connection link is set up wrongly"),
        _("Facebook refused how our link asked for access. This is a problem on our side, not yours."),
        _("Please contact our support team; we'll send you a corrected link."),
        can_retry=False,
    ),
    "mobile_not_supported": Failure(
        _("Please use a computer"),
        _("Facebook doesn't allow this kind of business connection from a phone or tablet."),
        _("Open the link from your invitation email in a web browser on a computer."),
    ),
    "meta_error": Failure(
        _("Facebook reported a problem"),
        _("Facebook stopped the connection before it finished. Nothing was connected."),
        _("Try again in a few minutes. If it keeps happening, contact our support team."),
    ),
    "missing_code": Failure(
        _("The answer from Facebook was incomplete"),
        _("We didn't receive what we need from Facebook to finish. Nothing was connected."),
        _("Start again. If it keeps happening, contact our support team."),
    ),
    "code_exchange_failed": Failure(
        _("We couldn't finish connecting"),
        _("Facebook didn't confirm the connection when we asked. Nothing was connected."),
        _("Start again: the confirmation from Facebook only lasts a short time."),
    ),
    "token_check_failed": Failure(
        _("We couldn't check the connection"),
        _("Facebook didn't answer when we checked the new access. Nothing was connected."),
        _("Try again in a few minutes."),
    ),
    "wrong_app": Failure(
        _("This access was given to a different app"),
        _("The access Facebook returned belongs to another app, so we can't use it. Nothing was connected."),
        _("Start again from the link in your invitation email. If it keeps happening, contact our support team."),
    ),
    "token_invalid": Failure(
        _("Facebook says this access no longer works"),
        _("The access we received was already invalid. Nothing was connected."),
        _("Start again. If you changed your Facebook password or logged out recently, log in again first."),
    ),
    "wrong_token_type": Failure(
        _("Facebook returned the wrong kind of access"),
        _("We asked for one kind of access and Facebook returned another. Nothing was connected."),
        _("Please contact our support team."),
        can_retry=False,
    ),
    "missing_permissions": Failure(
        _("Some permissions were not granted"),
        _("Our service needs every permission listed on the previous page, and some were left out."),
        _("Start again and leave every permission switched on."),
    ),
    "asset_listing_failed": Failure(
        _("We couldn't read which assets you chose"),
        _("Facebook didn't answer when we asked which assets were shared. Nothing was connected."),
        _("Try again in a few minutes."),
    ),
    "no_assets": Failure(
        _("No assets were chosen"),
        _("You didn't select any of the assets we asked for, so there is nothing to connect."),
        _("Start again and select at least one asset in Facebook's window."),
    ),
    "different_business": Failure(
        _("This is a different business"),
        _("The business you connected isn't the one this invitation is for. Nothing was changed."),
        _("Start again and choose the right business, or contact our support team."),
    ),
    "business_taken": Failure(
        _("This business is already connected under another account"),
        _("The business you chose is linked to another client of ours. Nothing was changed."),
        _(
            "If you look after several businesses, start again and choose the one this invitation is for in "
            "Facebook's window. Otherwise contact our support team so we can sort it out."
        ),
    ),
    "ambiguous_business": Failure(
        _("The assets you chose belong to several businesses"),
        _("We connect one business at a time and couldn't tell which one you meant. Nothing was connected."),
        _("Start again and select only the assets of the business this invitation is for."),
    ),
    "provider_business": Failure(
        _("This is our own business"),
        _(
            "The business you chose is the one that runs this service. Meta requires it to be separate from any "
            "client's business, so it can't be connected. Nothing was connected."
        ),
        _("Start again and choose your own business in Facebook's window."),
    ),
    "internal_error": Failure(
        _("Something went wrong on our side"),
        _("We couldn't finish connecting because of a problem in our service. Nothing was changed."),
        _("Try again in a few minutes. If it keeps happening, contact our support team."),
    ),
}

# The callback's own check of ``state``: the same page for every case, on purpose, so
# a forged request learns nothing.
STATE_FAILURE = Failure(
    _("This link has expired"),
    _("For your security, each connection attempt works once, for a short time, in the browser that started it."),
    _("Start again from the link in your invitation email."),
)


def failure_for(kind: str) -> Failure:
    return FAILURES.get(kind, FAILURES["meta_error"])
