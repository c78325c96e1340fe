"""The ML engine's key check (one written-out query on every signal POST): the key's own tenant, its use recorded,
nothing for a revoked, unknown or malformed key."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from signals.models import MLEngineKey
from signals.services import ml_engine_key_create, ml_engine_key_revoke, ml_engine_key_verify
from suho.routers import operator_path
from tests.accounts.helpers import tenant_make


def _last_used(key: MLEngineKey):
    with operator_path():
        return MLEngineKey.objects.get(pk=key.pk).last_used_at


def test_a_key_resolves_to_its_own_tenant_and_its_use_is_recorded(tenant):
    other = tenant_make()
    key, plaintext = ml_engine_key_create(tenant_id=tenant.id, label="lstm")
    ml_engine_key_create(tenant_id=other.id, label="theirs")
    assert _last_used(key) is None

    found = ml_engine_key_verify(key=plaintext)

    assert (found.pk, found.tenant_id, found.label) == (key.pk, tenant.id, "lstm")
    assert (found.key_hash, found.created_at, found.revoked_at) == (key.key_hash, key.created_at, None)
    assert timezone.now() - _last_used(key) < timedelta(seconds=30)


def test_a_revoked_unknown_or_malformed_key_is_none(tenant):
    key, plaintext = ml_engine_key_create(tenant_id=tenant.id, label="lstm")
    ml_engine_key_revoke(key=key)
    for presented in (plaintext, plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"), "suho_ml_", "x" * 300, 7):
        assert ml_engine_key_verify(key=presented) is None
