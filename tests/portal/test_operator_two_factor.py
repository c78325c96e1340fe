"""Operators' second factor on every staff path, through the real request stack: the portal log-in form, the admin
log-in (one message for a wrong password and a wrong code), a session made without the code, `/api/token/` and its
refresh, old staff access tokens, and the explicit `/api/staff/token/` path that asks for the code."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.admin_login import STAFF_LOGIN_INVALID
from accounts.models import User
from accounts.staff_auth import STAFF_TOKEN_REFUSED
from accounts.totp import totp_code, totp_verify
from accounts.user_api import STAFF_TOKEN_INVALID
from suho.routers import operator_path

PASSWORD = "operator passphrase 1"
ERRORNOTE = re.compile(r'<p class="errornote">\s*(.*?)\s*</p>', re.S)
NO_ACCOUNT = "No active account found with the given credentials"


def _staff(*, enrol: bool = True) -> User:
    with operator_path():
        user = User.objects.create_user(username="op2fa", password=PASSWORD, is_staff=True, is_superuser=True)
    if enrol:
        call_command("operator_totp_enable", "--username", "op2fa", stdout=io.StringIO())
        with operator_path():
            user.refresh_from_db()
    return user


def _admin_login(password: str = PASSWORD, code: str = "") -> tuple[Client, object]:
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "op2fa", "password": password, "otp_code": code})
    return client, response


def _errors(response) -> list[str]:
    return ERRORNOTE.findall(response.content.decode())


def _wrong_code(secret: str) -> str:
    return next(c for c in (f"{n:06d}" for n in range(10**6)) if not totp_verify(secret, c))


def test_rfc_6238_vector_and_drift():
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # RFC 6238's SHA-1 key, base32
    assert totp_code(secret, at=59)[-6:] == "287082"
    assert totp_verify(secret, "287082", at=59 + 30) and not totp_verify(secret, "287082", at=59 + 90)


def test_admin_log_in_with_password_and_current_code_opens_the_admin(committed):
    user = _staff()
    client, response = _admin_login(code=totp_code(user.totp_secret))
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/").status_code == 200  # the marked session keeps working


def test_admin_log_in_gives_one_message_for_a_wrong_password_and_a_wrong_code(committed):
    user = _staff()
    wrong_password = _admin_login(password="not the password", code=totp_code(user.totp_secret))[1]
    wrong_code = _admin_login(code=_wrong_code(user.totp_secret))[1]
    no_code = _admin_login()[1]
    assert wrong_password.status_code == wrong_code.status_code == no_code.status_code == 200
    assert _errors(wrong_password) == _errors(wrong_code) == _errors(no_code) == [STAFF_LOGIN_INVALID]


def test_portal_log_in_of_an_operator_is_refused_like_a_wrong_password_and_opens_no_admin(committed):
    _staff()
    client = Client()
    staff = client.post("/accounts/login/", {"username": "op2fa", "password": PASSWORD})
    wrong = Client().post("/accounts/login/", {"username": "op2fa", "password": "not the password"})
    assert staff.status_code == wrong.status_code == 200  # the form again, not a redirect
    assert staff.context["form"].non_field_errors() == wrong.context["form"].non_field_errors()
    assert client.get("/admin/").status_code == 302


def test_a_staff_session_made_without_the_code_is_signed_out_on_every_path(committed):
    user = _staff()
    client = Client()
    client.force_login(user)  # a session from any log-in that did not check the code
    admin = client.get("/admin/")
    assert admin.status_code == 302 and admin["Location"].startswith("/admin/login/")
    assert client.get("/api/signals/").status_code == 401
    assert client.get("/admin/").status_code == 302  # and it stays signed out


@pytest.mark.parametrize("enrol", [True, False])
def test_api_token_refuses_staff_with_the_wrong_password_message(committed, enrol):
    _staff(enrol=enrol)
    staff = Client().post("/api/token/", {"username": "op2fa", "password": PASSWORD})
    wrong = Client().post("/api/token/", {"username": "op2fa", "password": "not the password"})
    assert staff.status_code == wrong.status_code == 401
    assert staff.json() == wrong.json() and staff.json()["error"]["message"] == NO_ACCOUNT


def test_staff_tokens_minted_without_the_code_neither_refresh_nor_authenticate(committed):
    user = _staff()
    refresh = RefreshToken.for_user(user)  # as /api/token/ minted them before the second factor applied to it
    refused = Client().post("/api/token/refresh/", {"refresh": str(refresh)})
    assert refused.status_code == 401 and "access" not in refused.json()
    old_access = Client(HTTP_AUTHORIZATION=f"Bearer {refresh.access_token}").get("/api/signals/")
    assert old_access.status_code == 401 and old_access.json()["error"]["message"] == STAFF_TOKEN_REFUSED


def test_staff_token_path_needs_the_code_and_gives_one_message_for_any_wrong_part(committed):
    user = _staff()
    right = {"username": "op2fa", "password": PASSWORD, "otp_code": totp_code(user.totp_secret)}
    refusals = [
        Client().post("/api/staff/token/", {**right, "password": "not the password"}),
        Client().post("/api/staff/token/", {**right, "otp_code": _wrong_code(user.totp_secret)}),
        Client().post("/api/staff/token/", {k: v for k, v in right.items() if k != "otp_code"}),
    ]
    assert [r.status_code for r in refusals] == [401, 401, 401]
    assert {r.json()["error"]["message"] for r in refusals} == {STAFF_TOKEN_INVALID}

    issued = Client().post("/api/staff/token/", right)
    assert issued.status_code == 200 and set(issued.json()) == {"access"}
    signals = Client(HTTP_AUTHORIZATION=f"Bearer {issued.json()['access']}").get("/api/signals/")
    assert signals.status_code == 200


def test_required_two_factor_refuses_staff_without_a_secret(committed, settings):
    settings.OPERATOR_2FA_REQUIRED = True
    _staff(enrol=False)
    client, refused = _admin_login()
    assert _errors(refused) == [STAFF_LOGIN_INVALID]
    assert client.get("/admin/").status_code == 302
    settings.OPERATOR_2FA_REQUIRED = False
    client, _ = _admin_login()
    assert client.get("/admin/").status_code == 200
