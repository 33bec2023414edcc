"""Staff in tests: users in a role, signed in with both factors, and TOTP codes for real sign-ins.

``sign_in(client, user)`` is what a test client needs to open admin pages with
STAFF_TWO_FACTOR_REQUIRED on (the default, as in production): the session is logged in and
marked as verified by a confirmed TOTP device, exactly as the login form leaves it.
"""

from __future__ import annotations

import time

from django.contrib.auth.models import Group
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

# Every console changelist staff open, with each of its filters ({configuration}: a configuration's
# id): the no-token-value and query-count tests open them on a small seed, bench/admin.py times them
# at a million grants.
CONSOLE_PAGES = [
    "/admin/onboarding/clientbusiness/",
    "/admin/onboarding/clientbusiness/?status__exact=active",
    "/admin/onboarding/clientbusiness/?token_ends_within=ended",
    "/admin/onboarding/clientbusiness/?token_ends_within=7",
    "/admin/onboarding/clientbusiness/?token_ends_within=30",
    "/admin/onboarding/clientbusiness/?configuration={configuration}",
    "/admin/onboarding/clientbusiness/?connection=expiring",
    "/admin/onboarding/clientbusiness/?connection=needs_reauthorization",
    "/admin/onboarding/clientbusiness/?connection=not_connected",
    "/admin/onboarding/clientbusiness/?breaks_within=ended",
    "/admin/onboarding/clientbusiness/?breaks_within=7",
    "/admin/onboarding/clientbusiness/?breaks_within=30&o=4",
    "/admin/onboarding/clientbusiness/?q=Client",
    "/admin/onboarding/clientbusiness/?q=person1%40client.test",
    "/admin/tokens/accesstoken/",
    "/admin/tokens/accesstoken/?status__exact=active",
    "/admin/tokens/accesstoken/?kind__exact=user",
    "/admin/tokens/accesstoken/?ends_within=7",
    "/admin/tokens/accesstoken/?ends_within=30",
    "/admin/tokens/accesstoken/?expires_within=ended",
    "/admin/tokens/accesstoken/?expires_within=7",
    "/admin/tokens/accesstoken/?expires_within=30",
    "/admin/tokens/accesstoken/?data_access_ends_within=30",
    "/admin/tokens/accesstoken/?configuration__id__exact={configuration}",
    "/admin/tokens/assetgrant/",
    "/admin/tokens/assetgrant/?status__exact=active",
    "/admin/tokens/assetgrant/?access_ends_within=7",
    "/admin/tokens/assetgrant/?access_ends_within=30",
    "/admin/tokens/assetgrant/?asset__kind__exact=page",
    "/admin/tokens/assetgrant/?token__configuration__id__exact={configuration}",
    "/admin/tokens/reminder/",
    "/admin/tokens/reminder/?status__exact=pending",
    "/admin/tokens/reminder/?status__exact=sent&sent_within=30",
    "/admin/tokens/reminder/?reason__exact=token_expiring",
    "/admin/tokens/reminder/?stage__exact=7d",
    "/admin/onboarding/invitation/",
    "/admin/onboarding/invitation/?state=sent",
    "/admin/onboarding/invitation/?state=opened_ever&created_within=30",
    "/admin/onboarding/invitation/?mode__exact=reconnect",
    "/admin/onboarding/invitation/?configuration__id__exact={configuration}",
    "/admin/onboarding/loginattempt/",
    "/admin/onboarding/loginattempt/?outcome__exact=pending",
    "/admin/onboarding/loginattempt/?outcome_group=unsuccessful&created_within=30",
    "/admin/onboarding/loginattempt/?is_mobile__exact=1",
    "/admin/onboarding/loginattempt/?configuration__id__exact={configuration}",
    "/admin/tokens/tokenevent/",
    "/admin/tokens/tokenevent/?kind__exact=installed",
    "/admin/tokens/tokenevent/?actor=system",
    "/admin/tokens/sweeprun/",
    "/admin/tokens/sweeprun/?status__exact=finished",
    "/admin/staffjobs/staffjob/",
    "/admin/staffjobs/staffjob/?status__exact=finished",
    "/admin/tokens/asset/",
    "/admin/tokens/asset/?kind__exact=page",
    "/admin/onboarding/contact/",
    "/admin/api/servicecredential/",
    "/admin/api/apiuse/",
    "/admin/api/apiuse/?answer=no_token",
    "/admin/api/apiuse/?q=100200300",
]


def console_pages(configuration_id: int) -> list[str]:
    return [page.format(configuration=configuration_id) for page in CONSOLE_PAGES]


def totp_device(user) -> TOTPDevice:
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="Test authenticator", confirmed=True)


def totp_code(device: TOTPDevice, *, at: float | None = None) -> str:
    """The code the person's app shows now (or at ``at``, a Unix time)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() if at is None else at
    return f"{totp.token():0{device.digits}d}"


def sign_in(client, user):
    """Log ``user`` in on a test client with both factors; returns the client."""
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = totp_device(user).persistent_id
    session.save()
    return client


def make_staff(username: str, role: str | None = None, *, password: str | None = None, superuser: bool = False):
    """A staff user in one of console.roles' groups (``role=None``: no group, or a superuser)."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create(username=username, is_staff=True, is_superuser=superuser,
                                           email=f"{username}@provider.test")
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def run_queued_jobs() -> list:
    """Run every staff job still waiting for a worker, as a worker would; returns them, refreshed."""
    from staffjobs.jobs import run_job
    from staffjobs.models import StaffJob

    return [run_job(pk) for pk in StaffJob.objects.filter(status=StaffJob.Status.QUEUED).order_by("pk")
            .values_list("pk", flat=True)]
