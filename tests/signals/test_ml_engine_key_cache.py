"""A process remembers an ML-engine key it found (signals.services.credentials, issue 21): the next request with it
reads no database, and a revocation still refuses the very next request on every process, through the revocation
mark in Redis. "Another process" is this one with the entry that process would still hold put back after the
revocation. Redis is real; "Redis down" is a client pointed at a port nothing listens on."""

from __future__ import annotations

import logging
import time

import pytest
import redis
from django.db import connections, router
from django.test.utils import CaptureQueriesContext

from signals.models import MLEngineKey
from signals.services import credentials, ml_engine_key_create, ml_engine_key_revoke, ml_engine_key_verify
from suho.cache import cache_client
from suho.routers import operator_path
from tests.servers import free_port


@pytest.fixture
def redis_down(monkeypatch):
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    monkeypatch.setattr(credentials, "cache_client", lambda: dead)


def database_reads(plaintext: str) -> tuple:
    """What one check of the key gives, and how many times it read the key from the database (this thread's
    queries on the operator connection, where the look-up runs: other threads' work does not count)."""
    with operator_path(), CaptureQueriesContext(connections[router.db_for_read(MLEngineKey)]) as queries:
        found = ml_engine_key_verify(key=plaintext)
    return found, sum(
        query["sql"].startswith("SELECT") and MLEngineKey._meta.db_table in query["sql"] for query in queries
    )


def test_a_key_used_again_is_answered_without_the_database_each_caller_getting_its_own_row(tenant):
    key, plaintext = ml_engine_key_create(tenant_id=tenant.id, label="lstm")
    first = ml_engine_key_verify(key=plaintext)  # read, its use recorded, remembered

    again, used = database_reads(plaintext)

    assert used == 0, f"{used} reads"
    assert (again.pk, again.tenant_id, again.label, again.revoked_at) == (key.pk, tenant.id, "lstm", None)
    assert again is not first and again.last_used_at == first.last_used_at


def test_a_revoked_key_is_refused_at_its_next_request_also_by_a_process_that_remembered_it(tenant):
    key, plaintext = ml_engine_key_create(tenant_id=tenant.id)
    assert ml_engine_key_verify(key=plaintext) is not None
    held_elsewhere = credentials._remembered[key.key_hash]

    ml_engine_key_revoke(key=key)
    credentials._remembered[key.key_hash] = held_elsewhere  # as another process still has it

    refused, used = database_reads(plaintext)
    assert refused is None and used == 1  # the mark changed: the database answers


def test_a_lost_revocation_mark_matches_no_remembered_key(tenant):
    """Redis restarted (it keeps nothing on disk): the next check sets a new mark, and what was remembered under the
    old one is read again."""
    key, plaintext = ml_engine_key_create(tenant_id=tenant.id)
    ml_engine_key_verify(key=plaintext)
    cache_client().delete(credentials.ML_KEY_REVOCATION_MARK)

    found, used = database_reads(plaintext)

    assert found.pk == key.pk and used == 1
    assert cache_client().get(credentials.ML_KEY_REVOCATION_MARK) is not None


def test_with_redis_down_every_check_reads_the_database_and_a_revocation_applies_at_once(tenant, redis_down):
    key, plaintext = ml_engine_key_create(tenant_id=tenant.id)
    assert ml_engine_key_verify(key=plaintext).pk == key.pk

    again, used = database_reads(plaintext)
    assert again.pk == key.pk and used == 1
    assert key.key_hash not in credentials._remembered

    ml_engine_key_revoke(key=key)
    assert ml_engine_key_verify(key=plaintext) is None


def test_a_revocation_that_cannot_reach_redis_is_logged_and_ends_within_the_cache_time(
    tenant, monkeypatch, caplog
):  # fmt: skip
    monkeypatch.setattr(credentials, "ML_KEY_CACHE_S", 0.3)
    key, plaintext = ml_engine_key_create(tenant_id=tenant.id)
    ml_engine_key_verify(key=plaintext)
    held_elsewhere = credentials._remembered[key.key_hash]
    working = credentials.cache_client
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)

    monkeypatch.setattr(credentials, "cache_client", lambda: dead)
    with caplog.at_level(logging.ERROR, logger=credentials.__name__):
        ml_engine_key_revoke(key=key)
    monkeypatch.setattr(credentials, "cache_client", working)
    credentials._remembered[key.key_hash] = held_elsewhere

    assert "other processes may accept it for up to" in caplog.text
    time.sleep(credentials.ML_KEY_CACHE_S + 0.05)  # the documented window: at most ML_KEY_CACHE_S
    assert ml_engine_key_verify(key=plaintext) is None


def test_the_keys_remembered_are_bounded(tenant, monkeypatch):
    monkeypatch.setattr(credentials, "ML_KEY_CACHE_MAX", 3)
    monkeypatch.setattr(credentials, "_remembered", {})
    made = [ml_engine_key_create(tenant_id=tenant.id, label=f"k{n}") for n in range(5)]

    for _key, plaintext in made:
        assert ml_engine_key_verify(key=plaintext) is not None

    assert list(credentials._remembered) == [key.key_hash for key, _plaintext in made[2:]]  # the oldest made room
