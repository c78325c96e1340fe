"""Password log-ins back off (portal form, admin form, `/api/token/`): after a few failures from one address for one
user name that address waits, told so (form error, or 429 with Retry-After), and is refused before any password
is hashed; the same user at another address, and an address the user logged in from before, get in."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.test import Client

from accounts.admin_login import STAFF_LOGIN_INVALID
from accounts.models import User
from accounts.throttle import LOGIN_PAIR, LOGIN_PRINCIPAL
from suho.routers import operator_path
from tests.accounts.helpers import remote_addr_make
from tests.portal.conftest import PASSWORD

HASHED: list[str] = []


class CountingHasher(MD5PasswordHasher):
    """The test suite's hasher, counting verifications: a refused-while-blocked attempt must not reach it."""

    algorithm = "md5"

    def verify(self, password, encoded):
        HASHED.append(encoded)
        return super().verify(password, encoded)


@pytest.fixture(autouse=True)
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.portal.test_login_backoff.CountingHasher", *settings.PASSWORD_HASHERS[1:]]
    HASHED.clear()


def _portal(address: str, password: str, username: str = "alice"):
    return Client(REMOTE_ADDR=address).post("/accounts/login/", {"username": username, "password": password})


def test_portal_log_in_backs_off_the_address_not_the_user(trader):
    attacker = remote_addr_make()
    for _ in range(LOGIN_PAIR.free + 1):
        assert _portal(attacker, "wrong password").status_code == 200
    hashed = len(HASHED)

    blocked = _portal(attacker, PASSWORD)  # even the right password waits
    assert blocked.status_code == 200 and "_auth_user_id" not in blocked.client.session
    (error,) = blocked.context["form"].non_field_errors()
    assert error.startswith("Too many failed log-ins; try again in ")
    assert len(HASHED) == hashed  # refused before any hashing
    assert _portal(remote_addr_make(), PASSWORD).status_code == 302  # the user elsewhere is not locked out


def test_many_addresses_guessing_one_user_slow_strangers_but_not_the_users_own_address(trader):
    home = remote_addr_make()
    assert _portal(home, PASSWORD).status_code == 302  # the user's own address, trusted from now on
    for _ in range(LOGIN_PRINCIPAL.free + 1):
        _portal(remote_addr_make(), "wrong password")
    assert "Too many failed log-ins" in _portal(remote_addr_make(), PASSWORD).content.decode()
    assert _portal(home, PASSWORD).status_code == 302


def test_api_token_backs_off_with_429_and_retry_after(trader):
    address = remote_addr_make()
    client = Client(REMOTE_ADDR=address)
    for _ in range(LOGIN_PAIR.free + 1):
        assert client.post("/api/token/", {"username": "alice", "password": "wrong password"}).status_code == 401
    refused = client.post("/api/token/", {"username": "alice", "password": PASSWORD})
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= LOGIN_PAIR.max_s
    assert refused.json()["error"]["code"] == "rate_limited"
    assert (
        Client(REMOTE_ADDR=remote_addr_make())
        .post("/api/token/", {"username": "alice", "password": PASSWORD})
        .status_code
        == 200
    )


def test_admin_log_in_counts_wrong_codes_and_backs_off(committed):
    with operator_path():
        User.objects.create_user(username="op-backoff", password=PASSWORD, is_staff=True, totp_secret="A" * 32)
    client = Client(REMOTE_ADDR=remote_addr_make())
    for _ in range(LOGIN_PAIR.free + 1):  # the right password with a wrong code is a failure too
        response = client.post("/admin/login/", {"username": "op-backoff", "password": PASSWORD, "otp_code": "1"})
        assert STAFF_LOGIN_INVALID in response.content.decode()
    blocked = client.post("/admin/login/", {"username": "op-backoff", "password": PASSWORD, "otp_code": "1"})
    assert "Too many failed log-ins" in blocked.content.decode()
