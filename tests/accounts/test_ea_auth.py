"""EA authentication: API key → session and JWT pair; every refusal has its code, changes nothing else, and is
recorded on the account and in the audit log; failed attempts are rate limited per account and per IP."""

from __future__ import annotations

import uuid

import pytest
from argon2 import PasswordHasher
from django.conf import settings

from accounts import services, throttle
from accounts.models import ApiKey, EASession, MT5Account
from accounts.selectors import ea_session_active
from accounts.services import (
    AUTH_ACCOUNT_DISABLED,
    AUTH_BAD_KEY,
    AUTH_RATE_LIMITED,
    AUTH_UNKNOWN_ACCOUNT,
    EAAuthError,
    Refusal,
    api_key_create,
    ea_access_verify,
    ea_auth,
    ea_authenticate,
)
from compliance.models import AuditLog
from suho.cache import cache_client
from suho.routers import operator_path
from suho.tenancy import tenant_context
from tests.accounts.helpers import account_make, remote_addr_make, secret_of, tenant_make


def snapshot(account: MT5Account) -> dict:
    """Everything a refused attempt must leave alone."""
    with operator_path():
        return {
            "sessions": list(EASession.objects.filter(account=account).values_list("session_id", flat=True)),
            "keys": list(ApiKey.objects.filter(account=account).values("key_id", "last_used_at", "revoked_at")),
        }


def refusal_of(account: MT5Account) -> tuple[str, bool]:
    with operator_path():
        account = MT5Account.objects.get(pk=account.pk)
    return account.last_refusal_reason, account.last_refusal_at is not None


def failed_audits(**filters) -> list[AuditLog]:
    with operator_path():
        return list(AuditLog.objects.filter(event_type="ea_auth_failed", **filters).order_by("id"))


def refused(**kwargs) -> EAAuthError:
    with pytest.raises(EAAuthError) as caught:
        ea_authenticate(**kwargs)
    return caught.value


@pytest.fixture
def verifications(monkeypatch) -> list[str]:
    """Counts Argon2 verifications (timing: every look-up path spends exactly one)."""
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash, password):
            calls.append(hash)
            return super().verify(hash, password)

    monkeypatch.setattr(ea_auth, "_hasher", Counting())
    return calls


# --- success -----------------------------------------------------------------------------------------------------


def test_a_key_verified_once_is_not_hashed_again_but_a_wrong_secret_is_and_fails(account, issued, verifications):
    """A reconnecting EA costs no Argon2 hash (the verification is remembered in Redis: a storm after a deploy)."""
    ea_authenticate(account_id=account.pk, api_key=issued[1])
    ea_authenticate(account_id=account.pk, api_key=issued[1])
    assert len(verifications) == 1

    with pytest.raises(EAAuthError) as caught:
        ea_authenticate(account_id=account.pk, api_key=issued[1][:-4] + "AAAA")
    assert (caught.value.code, len(verifications)) == (Refusal.BAD_KEY, 2)


def test_a_value_someone_else_wrote_to_redis_lets_no_wrong_secret_in(account, issued, verifications):
    cache_client().set(f"ea_key_verified:{issued[0].key_id}", "0" * 64)
    with pytest.raises(EAAuthError) as caught:
        ea_authenticate(account_id=account.pk, api_key=issued[1][:-4] + "AAAA")
    assert (caught.value.code, len(verifications)) == (Refusal.BAD_KEY, 1)


def test_good_key_opens_a_session_and_returns_tokens_for_its_tenant_and_account(account, issued, remote_addr):
    api_key, plaintext = issued

    tokens = ea_authenticate(account_id=str(account.pk), api_key=plaintext, remote_addr=remote_addr)

    assert (tokens.tenant_id, tokens.account_id) == (account.tenant_id, account.pk)
    assert 14 * 60 <= (tokens.access_expires_at - tokens.refresh_expires_at).total_seconds() + 30 * 86400 <= 15 * 60
    claims = ea_access_verify(token=tokens.access)
    assert (claims.tenant_id, claims.account_id, claims.session_id) == (
        account.tenant_id, account.pk, tokens.session_id,
    )  # fmt: skip
    with operator_path():
        session = EASession.objects.get(session_id=tokens.session_id)
        assert ApiKey.objects.get(pk=api_key.pk).last_used_at is not None
        assert AuditLog.objects.filter(event_type="ea_auth_succeeded", account_id=account.pk).count() == 1
    assert (session.api_key_id, session.tenant_id, session.remote_addr) == (api_key.pk, account.tenant_id, remote_addr)
    assert session.ended_at is None and session.refresh_generation == 0
    assert ea_session_active(session_id=tokens.session_id, tenant_id=account.tenant_id)


def test_tokens_carry_no_secret_and_the_access_token_is_not_a_refresh_token(account, issued, remote_addr):
    tokens = ea_authenticate(account_id=account.pk, api_key=issued[1], remote_addr=remote_addr)
    assert secret_of(issued[1]) not in tokens.access + tokens.refresh
    with pytest.raises(EAAuthError) as caught:
        ea_access_verify(token=tokens.refresh)
    assert caught.value.code == Refusal.INVALID_TOKEN


# --- refusals: clear code, nothing changed, recorded ----------------------------------------------------------------


def test_wrong_secret_is_bad_key_and_changes_nothing_but_the_refusal_record(account, issued, remote_addr):
    api_key, plaintext = issued
    before = snapshot(account)

    error = refused(account_id=account.pk, api_key=plaintext[:-4] + "AAAA", remote_addr=remote_addr)

    assert (error.code, error.message) == (Refusal.BAD_KEY, AUTH_BAD_KEY)
    assert snapshot(account) == before
    assert refusal_of(account) == ("bad_key", True)
    [audit] = failed_audits(account_id=account.pk)
    assert (audit.severity, audit.tenant_id, audit.ip_address) == ("warning", account.tenant_id, remote_addr)
    assert audit.metadata["code"] == "bad_key" and audit.metadata["key_id"] == api_key.key_id
    assert secret_of(plaintext)[:-4] not in str(audit.metadata)


@pytest.mark.parametrize("garbage", ["", "suho_ea_", "suho_ea_123_abc", "not a key at all", "suho_ea_" + "x" * 500])
def test_malformed_key_is_bad_key(account, issued, remote_addr, garbage, verifications):
    before = snapshot(account)
    assert refused(account_id=account.pk, api_key=garbage, remote_addr=remote_addr).code == Refusal.BAD_KEY
    assert snapshot(account) == before
    assert len(verifications) == 1  # a dummy verification: malformed keys answer no faster than wrong ones


def test_unknown_account_is_refused_and_recorded_as_a_platform_event(issued, remote_addr, verifications):
    ghost = uuid.uuid4()
    with operator_path():
        sessions_before = EASession.objects.count()

    error = refused(account_id=ghost, api_key=issued[1], remote_addr=remote_addr)

    assert (error.code, error.message) == (Refusal.UNKNOWN_ACCOUNT, AUTH_UNKNOWN_ACCOUNT)
    assert len(verifications) == 1
    with operator_path():
        assert EASession.objects.count() == sessions_before
    [audit] = failed_audits(metadata__claimed_account_id=str(ghost))
    assert audit.tenant_id is None and audit.account_id is None


@pytest.mark.parametrize("account_id", ["not-a-uuid", "", None, 42])
def test_account_id_that_is_not_a_uuid_is_unknown_account(issued, remote_addr, account_id):
    assert refused(account_id=account_id, api_key=issued[1], remote_addr=remote_addr).code == Refusal.UNKNOWN_ACCOUNT


def test_unknown_key_id_still_spends_one_verification(account, issued, remote_addr, verifications):
    fake = "suho_ea_" + "0" * 12 + "_" + "A" * 43
    assert refused(account_id=account.pk, api_key=fake, remote_addr=remote_addr).code == Refusal.BAD_KEY
    assert len(verifications) == 1


def test_valid_key_of_another_account_in_the_same_tenant_is_bad_key(tenant, account, issued, remote_addr):
    sibling = account_make(tenant)
    before = snapshot(sibling), snapshot(account)

    assert refused(account_id=sibling.pk, api_key=issued[1], remote_addr=remote_addr).code == Refusal.BAD_KEY

    assert (snapshot(sibling), snapshot(account)) == before
    assert refusal_of(sibling) == ("bad_key", True)


def test_key_of_tenant_a_cannot_open_tenant_b_account(account, issued, remote_addr):
    tenant_b = tenant_make()
    account_b = account_make(tenant_b)
    api_key_create(account=account_b)
    before = snapshot(account_b)

    assert refused(account_id=account_b.pk, api_key=issued[1], remote_addr=remote_addr).code == Refusal.BAD_KEY
    assert snapshot(account_b) == before

    tokens = ea_authenticate(account_id=account.pk, api_key=issued[1], remote_addr=remote_addr)
    claims = ea_access_verify(token=tokens.access)
    assert claims.tenant_id == account.tenant_id != tenant_b.pk
    with tenant_context(claims.tenant_id):  # what the gateway does with a verified token: tenant B stays invisible
        assert list(MT5Account.objects.values_list("pk", flat=True)) == [account.pk]
        assert not MT5Account.objects.filter(pk=account_b.pk).exists()
    assert not ea_session_active(session_id=claims.session_id, tenant_id=tenant_b.pk)


def test_disabled_account_or_tenant_is_refused(tenant, account, issued, remote_addr):
    with operator_path():
        MT5Account.objects.filter(pk=account.pk).update(is_active=False)
    error = refused(account_id=account.pk, api_key=issued[1], remote_addr=remote_addr)
    assert (error.code, error.message) == (Refusal.UNKNOWN_ACCOUNT, AUTH_ACCOUNT_DISABLED)

    with operator_path():
        MT5Account.objects.filter(pk=account.pk).update(is_active=True)
        type(tenant).objects.filter(pk=tenant.pk).update(is_active=False)
    error = refused(account_id=account.pk, api_key=issued[1], remote_addr=remote_addr)
    assert (error.code, error.message) == (Refusal.UNKNOWN_ACCOUNT, AUTH_ACCOUNT_DISABLED)
    assert snapshot(account)["sessions"] == []


# --- rate limits (accounts/throttle.py) -----------------------------------------------------------------------------

PAIR_FREE, SOURCE_FREE = throttle.EA_PAIR.free, throttle.EA_SOURCE.free


def test_failures_from_one_source_back_off_that_source_for_that_account(account, issued, verifications):
    attacker = remote_addr_make()
    for _ in range(PAIR_FREE + 1):
        assert refused(account_id=account.pk, api_key="wrong", remote_addr=attacker).code == Refusal.BAD_KEY
    before, verified = snapshot(account), len(verifications)

    error = refused(account_id=account.pk, api_key=issued[1], remote_addr=attacker)
    again = refused(account_id=account.pk, api_key=issued[1], remote_addr=attacker)

    assert (error.code, error.message) == (Refusal.RATE_LIMITED, AUTH_RATE_LIMITED)
    assert 0 < error.retry_after_s <= throttle.EA_PAIR.max_s and again.code == Refusal.RATE_LIMITED
    assert len(verifications) == verified  # refused before any verification
    assert snapshot(account) == before
    assert refusal_of(account) == ("rate_limited", True)
    codes = [a.metadata["code"] for a in failed_audits(account_id=account.pk)]
    assert codes == ["bad_key"] * (PAIR_FREE + 1) + ["rate_limited"]  # noted once, not per attempt


def test_someone_elses_failures_never_block_the_genuine_key_from_its_own_source(account, issued):
    for _ in range(3):
        attacker = remote_addr_make()
        for _ in range(PAIR_FREE + 5):
            refused(account_id=account.pk, api_key="wrong", remote_addr=attacker)
    assert ea_authenticate(account_id=account.pk, api_key=issued[1], remote_addr=remote_addr_make()).account_id == (
        account.pk
    )


def test_back_off_doubles_and_is_capped():
    source = remote_addr_make()
    attempt = throttle.AttemptThrottle("test", source=source, principal="p", pair=throttle.EA_PAIR,
                                       per_source=throttle.EA_SOURCE)  # fmt: skip
    waits = []
    for _ in range(PAIR_FREE + 12):
        attempt.failed()
        waits.append(attempt.wait_s())
    assert waits[:PAIR_FREE] == [0] * PAIR_FREE
    first = settings.AUTH_BACKOFF_FIRST_BLOCK_S
    assert waits[PAIR_FREE : PAIR_FREE + 3] == [first, 2 * first, 4 * first]
    assert max(waits) == throttle.EA_PAIR.max_s  # never longer than the cap


def test_a_source_spraying_accounts_is_blocked_but_not_the_ones_it_authenticated_before(account, issued):
    nat = remote_addr_make()
    assert ea_authenticate(account_id=account.pk, api_key=issued[1], remote_addr=nat).account_id == account.pk
    other_account = account_make(account.tenant)
    other_key = api_key_create(account=other_account)[1]
    for _ in range(SOURCE_FREE + 1):
        refused(account_id=uuid.uuid4(), api_key="wrong", remote_addr=nat)

    error = refused(account_id=other_account.pk, api_key=other_key, remote_addr=nat)
    assert error.code == Refusal.RATE_LIMITED and error.retry_after_s > 0
    assert ea_authenticate(account_id=account.pk, api_key=issued[1], remote_addr=nat).account_id == account.pk
    assert ea_authenticate(account_id=other_account.pk, api_key=other_key, remote_addr=remote_addr_make())


def test_ipv6_clients_are_counted_per_64_network(account, issued):
    prefix = f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}:1"
    for host in range(SOURCE_FREE + 1):
        refused(account_id=uuid.uuid4(), api_key="wrong", remote_addr=f"{prefix}::{host + 1:x}")

    assert refused(account_id=account.pk, api_key=issued[1], remote_addr=f"{prefix}::ffff").code == Refusal.RATE_LIMITED
    assert ea_authenticate(account_id=account.pk, api_key=issued[1], remote_addr=f"{prefix}0::1").account_id == (
        account.pk
    )


def test_a_success_clears_the_pairs_counter(account, issued):
    source = remote_addr_make()
    for _ in range(2):
        for _ in range(PAIR_FREE):
            refused(account_id=account.pk, api_key="wrong", remote_addr=source)
        ea_authenticate(account_id=account.pk, api_key=issued[1], remote_addr=source)


def test_without_redis_the_limits_count_in_this_process(account, issued, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }  # fmt: skip  (nothing listens there)
    source = remote_addr_make()
    attempt = throttle.AttemptThrottle("ea", source=source, principal=str(account.pk), pair=throttle.EA_PAIR,
                                       per_source=throttle.EA_SOURCE)  # fmt: skip
    for _ in range(PAIR_FREE + 1):
        assert attempt.wait_s() == 0
        attempt.failed()
    assert attempt.wait_s() >= 1 and throttle._local_store.get_many([attempt.counters[0].key])


# --- refusals the gateway detects ---------------------------------------------------------------------------------


def test_gateway_refusal_is_kept_on_the_account_once_per_interval(account):
    assert services.ea_refusal_record(account_id=str(account.pk), reason="unsupported_version", remote_addr="::1")
    assert refusal_of(account) == ("unsupported_version", True)
    assert not services.ea_refusal_record(account_id=account.pk, reason="unsupported_version")
    assert services.ea_refusal_record(account_id=account.pk, reason="clock_skew")
    assert refusal_of(account) == ("clock_skew", True)
    assert [a.metadata["code"] for a in failed_audits(account_id=account.pk)] == ["unsupported_version", "clock_skew"]


@pytest.mark.parametrize("account_id", [None, "garbage", uuid.uuid4()])
def test_gateway_refusal_for_an_unknown_account_writes_nothing(committed, account_id):
    assert not services.ea_refusal_record(account_id=account_id, reason="clock_skew")
    assert failed_audits() == []


def test_gateway_refusal_with_an_unknown_reason_is_a_programming_error(account):
    with pytest.raises(ValueError, match="Unknown refusal reason"):
        services.ea_refusal_record(account_id=account.pk, reason="because")
    assert refusal_of(account) == ("", False)


def test_refusal_codes_are_the_wire_auth_statuses():
    from binproto.constants import AuthStatus

    assert {code.upper() for code in Refusal} <= set(AuthStatus.__members__)
