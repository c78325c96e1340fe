"""Operators' second factor: with a TOTP secret the admin log-in needs the current code; a wrong or missing code is
refused with its message; with OPERATOR_2FA_REQUIRED staff without a secret cannot log in."""

from __future__ import annotations

from django.core.management import call_command
from django.test import Client

from accounts.admin_login import TOTP_INVALID, TOTP_NOT_ENROLLED
from accounts.models import User
from accounts.totp import totp_code, totp_verify
from suho.routers import operator_path

PASSWORD = "operator passphrase 1"


def _staff() -> User:
    with operator_path():
        return User.objects.create_user(username="op2fa", password=PASSWORD, is_staff=True)


def _login(code: str = "") -> Client:
    client = Client()
    client.post("/admin/login/?next=/admin/", {"username": "op2fa", "password": PASSWORD, "otp_code": code})
    return client


def test_rfc_6238_vector_and_drift():
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # RFC 6238's SHA-1 key, base32
    assert totp_code(secret, at=59)[-6:] == "287082"
    assert totp_verify(secret, "287082", at=59 + 30) and not totp_verify(secret, "287082", at=59 + 90)


def test_enrolled_operator_needs_the_current_code(committed, capsys):
    user = _staff()
    call_command("operator_totp_enable", "--username", "op2fa")
    secret = capsys.readouterr().out.split("secret: ")[1].split()[0]
    refused = Client().post("/admin/login/", {"username": "op2fa", "password": PASSWORD, "otp_code": "000000"})
    assert TOTP_INVALID in refused.content.decode()
    assert _login().get("/admin/").status_code == 302  # not signed in
    assert _login(totp_code(secret)).get("/admin/").status_code == 200
    assert User.objects.get(pk=user.pk).totp_secret == secret


def test_required_two_factor_refuses_staff_without_a_secret(committed, settings):
    settings.OPERATOR_2FA_REQUIRED = True
    _staff()
    refused = Client().post("/admin/login/", {"username": "op2fa", "password": PASSWORD})
    assert TOTP_NOT_ENROLLED in refused.content.decode()
    settings.OPERATOR_2FA_REQUIRED = False
    assert _login().get("/admin/").status_code == 200
