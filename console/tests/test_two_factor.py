"""Staff sign in with a password and a TOTP code; without the code no admin URL opens; repeated
failures lock the sign-in (django-axes)."""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from testsupport.staff import make_staff, totp_code, totp_device

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def olga():
    return make_staff("olga", "Operator", password=PASSWORD)


def sign_in(client, code: str, username="olga", password=PASSWORD):
    return client.post(LOGIN, {"username": username, "password": password, "otp_token": code, "next": "/admin/"})


def test_the_login_page_is_branded_and_asks_for_the_code(client, settings):
    settings.PORTAL_NAME = "Acme Provider Portal"
    page = client.get(LOGIN).content.decode()
    assert "Acme Provider Portal" in page and "Django administration" not in page
    assert 'name="otp_token"' in page and 'autocomplete="one-time-code"' in page


def test_a_password_and_the_apps_current_code_open_the_admin(client, olga):
    device = totp_device(olga)

    response = sign_in(client, totp_code(device))

    assert response.status_code == 302 and response.url == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_wrong_code_and_a_wrong_password_get_the_same_answer(client, olga):
    device = totp_device(olga)
    wrong_code = sign_in(client, f"{(int(totp_code(device)) + 1) % 1_000_000:06d}")
    wrong_password = sign_in(client, totp_code(device), password="nope")

    for response in (wrong_code, wrong_password):
        assert response.status_code == 200
        assert "Wrong username, password or code." in response.content.decode()
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("url", ["/admin/", "/admin/tokens/accesstoken/", "/admin/onboarding/clientbusiness/",
                                 "/admin/dashboard/", "/admin/staffjobs/staffjob/"])
def test_a_password_only_session_opens_no_admin_url(client, olga, url):
    totp_device(olga)
    client.force_login(olga)  # the password step done, the code step not

    response = client.get(url)

    assert response.status_code == 302 and response.url.startswith(LOGIN)


def test_someone_without_a_device_sets_one_up_before_any_admin_page_opens(client, olga):
    response = sign_in(client, "")
    assert client.get("/admin/").url.startswith(LOGIN)
    setup = client.get(client.get(LOGIN).url)
    assert setup.status_code == 200
    page = setup.content.decode()
    assert "<svg" in page and "Finish setup" in page  # the QR code, drawn inline
    device = TOTPDevice.objects.get(user=olga, confirmed=False)

    wrong = client.post("/admin/two-factor/setup/", {"otp_token": "000000"})
    assert "That code does not match" in wrong.content.decode()
    too_soon = client.post("/admin/two-factor/setup/", {"otp_token": totp_code(device)})
    assert "wait a few seconds" in too_soon.content.decode()  # django-otp's throttle after a wrong code
    with time_machine.travel(timezone.now() + timedelta(seconds=10)):
        done = client.post("/admin/two-factor/setup/", {"otp_token": totp_code(device)})

    assert response.status_code == 302
    assert done.status_code == 302 and done.url == "/admin/"
    assert client.get("/admin/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed


def test_a_password_alone_never_adds_a_second_device(client, olga):
    totp_device(olga)
    client.force_login(olga)

    response = client.get("/admin/two-factor/setup/")

    assert response.status_code == 302 and response.url == LOGIN
    assert TOTPDevice.objects.filter(user=olga).count() == 1
    assert "_auth_user_id" not in client.session  # signed out: sign in again with the code


def test_repeated_wrong_codes_lock_the_sign_in_even_for_the_right_code(client, olga, settings):
    device = totp_device(olga)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "000000")

    locked = sign_in(client, totp_code(device))

    assert locked.status_code == 429
    assert "Sign-in locked" in locked.content.decode()
    assert client.get("/admin/").status_code == 302


def test_the_demo_may_switch_the_second_factor_off(client, olga, settings):
    settings.STAFF_TWO_FACTOR_REQUIRED = False
    assert 'name="otp_token"' not in client.get(LOGIN).content.decode()

    response = client.post(LOGIN, {"username": "olga", "password": PASSWORD, "next": "/admin/"})

    assert response.status_code == 302 and client.get("/admin/").status_code == 200


def test_production_refuses_to_start_without_the_second_factor(settings):
    settings.PRODUCTION = True
    settings.DEBUG = False
    settings.STAFF_TWO_FACTOR_REQUIRED = False
    with pytest.raises(SystemCheckError, match="portal.E080"):
        call_command("check")
