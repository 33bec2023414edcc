"""Staff sign in with a password and a TOTP code (django-otp); failures count towards the lockout.

With STAFF_TWO_FACTOR_REQUIRED (always in production) the login form asks for the code of the
person's authenticator app. Someone who has no device yet signs in with the password only and
is sent to set one up before any admin page opens (docs/decisions.md D80). A wrong password and
a wrong code get the same answer, so the form never tells a guesser that the password was right,
and both are reported to django-axes as failed logins.
"""

from __future__ import annotations

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import logout, user_login_failed
from django.contrib.contenttypes.models import ContentType
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

WRONG_LOGIN = "Wrong username, password or code. Check them and try again (after a few failures sign-in is locked)."


def two_factor_required() -> bool:
    return settings.STAFF_TWO_FACTOR_REQUIRED


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def report_failure(request, username: str) -> None:
    """Tell django-axes (and anyone listening) that a sign-in failed, as a wrong password would."""
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)


def verify_code(device: TOTPDevice, code: str) -> bool:
    allowed, _ = device.verify_is_allowed()  # django-otp's own throttle after repeated wrong codes
    return bool(allowed and code and device.verify_token(code.replace(" ", "")))


class StaffLoginForm(AdminAuthenticationForm):
    error_messages = {**AdminAuthenticationForm.error_messages, "invalid_login": WRONG_LOGIN}
    otp_token = forms.CharField(
        label="Code from your authenticator app",
        required=False,
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "size": 8}),
        help_text="Six digits. First sign-in? Leave it empty: you will set up the app next.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not two_factor_required():
            del self.fields["otp_token"]

    def clean(self):
        cleaned = super().clean()  # checks the password (django-axes counts a wrong one)
        user = self.user_cache
        if user is None or not two_factor_required():
            return cleaned
        device = confirmed_device(user)
        if device is None:
            return cleaned  # first sign-in: the setup page comes next, before any admin page
        if not verify_code(device, cleaned.get("otp_token", "")):
            report_failure(self.request, cleaned.get("username", ""))
            self.user_cache = None
            raise forms.ValidationError(WRONG_LOGIN, code="invalid_login")
        user.otp_device = device  # django_otp marks the session verified when auth.login runs
        return cleaned


class SetupCodeForm(forms.Form):
    otp_token = forms.CharField(
        label="Code shown by the app",
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "size": 8}),
    )


def setup_view(site, request):
    """Set up an authenticator app: a QR code and its key, then one code to prove it works."""
    user = request.user
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return redirect(f"{reverse('admin:login', current_app=site.name)}?next={request.path}")
    if not two_factor_required() or user.is_verified():
        return redirect("admin:index")
    if confirmed_device(user) is not None:
        # A device exists: a password alone must never add another one. Sign in with its code.
        logout(request)
        return redirect("admin:login")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = SetupCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not device.verify_is_allowed()[0]:
            form.add_error("otp_token", "Too many wrong codes in a row: wait a few seconds, then try the newest code.")
        elif verify_code(device, form.cleaned_data["otp_token"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            LogEntry.objects.log_actions(
                user_id=user.pk,
                queryset=[device],
                action_flag=ADDITION,
                change_message='[{"added": {"name": "TOTP device", "object": "Authenticator app"}}]',
                single_object=True,
            )
            messages.success(request, "Two-factor sign-in is set up. From now on, sign in with a code from the app.")
            return redirect("admin:index")
        else:
            report_failure(request, user.get_username())
            form.add_error("otp_token", "That code does not match. Check the phone's clock and try the newest code.")
    secret = device.config_url.split("secret=", 1)[1].split("&", 1)[0]
    context = {
        **site.each_context(request),
        "title": "Set up two-factor sign-in",
        "form": form,
        "qr_svg": segno.make(device.config_url, error="m").svg_inline(scale=4, omitsize=False),
        "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "content_type": ContentType.objects.get_for_model(TOTPDevice),
    }
    return TemplateResponse(request, "admin/console/two_factor_setup.html", context)
