"""API keys: issued once in plaintext, stored as an Argon2 hash, revoked and rotated with their sessions."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher

from accounts.models import ApiKey, EASession
from accounts.services import (
    API_KEY_ALREADY_REVOKED,
    AUTH_REVOKED_KEY,
    ApiKeyError,
    EAAuthError,
    Refusal,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
    ea_authenticate,
)
from compliance.models import AuditLog
from suho.routers import operator_path

KEY_FORMAT = re.compile(r"^suho_ea_(?P<key_id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43,})$")


def reload(obj):
    with operator_path():
        return type(obj).objects.get(pk=obj.pk)


def audit_events(**filters) -> list[str]:
    with operator_path():
        return list(AuditLog.objects.filter(**filters).order_by("id").values_list("event_type", flat=True))


def test_key_is_returned_once_in_its_format_and_only_a_hash_is_stored(account):
    api_key, plaintext = api_key_create(account=account, label="office PC")

    match = KEY_FORMAT.match(plaintext)
    assert match, plaintext
    stored = reload(api_key)
    assert stored.key_id == match["key_id"]
    assert stored.label == "office PC"
    assert stored.tenant_id == account.tenant_id
    assert match["secret"] not in stored.secret_hash
    assert stored.secret_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(stored.secret_hash, match["secret"])
    assert plaintext not in str(stored) and match["secret"] not in repr(stored.__dict__)
    assert audit_events(account_id=account.pk) == ["api_key_issued"]


def test_two_keys_never_share_an_id_or_secret(account):
    first, second = api_key_create(account=account)[1], api_key_create(account=account)[1]
    assert first != second
    assert KEY_FORMAT.match(first)["key_id"] != KEY_FORMAT.match(second)["key_id"]


def test_revoking_ends_every_live_session_of_that_key_only(account, issued, remote_addr):
    api_key, plaintext = issued
    _other_key, other_plaintext = api_key_create(account=account)
    sessions = [ea_authenticate(account_id=account.pk, api_key=plaintext, remote_addr=remote_addr) for _ in range(2)]
    kept = ea_authenticate(account_id=account.pk, api_key=other_plaintext, remote_addr=remote_addr)

    api_key_revoke(api_key=api_key)

    assert reload(api_key).revoked_at is not None
    with operator_path():
        ended = EASession.objects.filter(session_id__in=[t.session_id for t in sessions])
        assert [(s.ended_at is not None, s.end_reason) for s in ended] == [(True, "revoked")] * 2
        assert EASession.objects.get(session_id=kept.session_id).ended_at is None
    assert audit_events(event_type="api_key_revoked")[-1:] == ["api_key_revoked"]


def test_revoked_key_is_refused_with_revoked_key(account, issued, remote_addr):
    api_key, plaintext = issued
    api_key_revoke(api_key=api_key)

    with pytest.raises(EAAuthError) as refused:
        ea_authenticate(account_id=account.pk, api_key=plaintext, remote_addr=remote_addr)
    assert (refused.value.code, refused.value.message) == (Refusal.REVOKED_KEY, AUTH_REVOKED_KEY)


def test_revoking_twice_changes_nothing_the_second_time(issued):
    api_key, _ = issued
    first = api_key_revoke(api_key=api_key).revoked_at
    second = api_key_revoke(api_key=api_key).revoked_at
    assert first == second == reload(api_key).revoked_at
    assert audit_events(event_type="api_key_revoked") == ["api_key_revoked"]


def test_rotation_issues_a_working_key_and_revokes_the_old_one(account, issued, remote_addr):
    old, old_plaintext = issued
    session = ea_authenticate(account_id=account.pk, api_key=old_plaintext, remote_addr=remote_addr)

    new, new_plaintext = api_key_rotate(api_key=old)

    old = reload(old)
    assert old.revoked_at is not None and old.replaced_by_id == new.pk
    assert KEY_FORMAT.match(new_plaintext) and new_plaintext != old_plaintext
    assert new.account_id == account.pk and new.label == old.label and new.revoked_at is None
    with operator_path():
        assert EASession.objects.get(session_id=session.session_id).end_reason == "revoked"
    assert ea_authenticate(account_id=account.pk, api_key=new_plaintext, remote_addr=remote_addr).account_id == (
        account.pk
    )
    assert audit_events(account_id=account.pk, action="rotate") == ["api_key_issued", "api_key_revoked"]


def test_rotating_a_revoked_key_is_refused_and_issues_nothing(issued):
    api_key, _ = issued
    api_key_revoke(api_key=api_key)
    with operator_path():
        keys_before = ApiKey.objects.count()

    with pytest.raises(ApiKeyError, match=API_KEY_ALREADY_REVOKED):
        api_key_rotate(api_key=api_key)

    with operator_path():
        assert ApiKey.objects.count() == keys_before
    assert reload(api_key).replaced_by_id is None
