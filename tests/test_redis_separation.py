"""Several deployments on one Redis (issue 15, finding 11): each takes its Redis database from REDIS_URL and puts
every key under its REDIS_KEY_PREFIX, so two stacks share no cache entry, channel layer or Celery queue.

Each deployment's settings come from `suho.settings` in a process of its own with that deployment's environment;
the test then drives Django's cache, the Channels layer and Celery with them against this machine's Redis.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from urllib.parse import urlsplit

import pytest
from celery import Celery
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.utils.module_loading import import_string

from tests.gateway.ea_client import server_env

DUMP = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'cache': s.CACHES['default'], 'channels': s.CHANNEL_LAYERS['default']['CONFIG'], "
    "'broker': s.CELERY_BROKER_URL, 'broker_options': getattr(s, 'CELERY_BROKER_TRANSPORT_OPTIONS', {})}))"
)


def deployment_settings(**env: str) -> dict:
    """The Redis settings a process started with `env` uses."""
    done = subprocess.run([sys.executable, "-c", DUMP], env=server_env(**env), cwd=settings.BASE_DIR,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def redis_url(db: int) -> str:
    return urlsplit(settings.REDIS_URL)._replace(path=f"/{db}").geturl()


@pytest.fixture(
    params=[
        pytest.param(({"REDIS_URL": redis_url(5)}, {"REDIS_URL": redis_url(6)}), id="two-databases"),
        pytest.param(({"REDIS_KEY_PREFIX": "stack-a"}, {"REDIS_KEY_PREFIX": "stack-b"}), id="two-prefixes"),
    ]
)
def two_deployments(request) -> tuple[dict, dict]:
    env_a, env_b = request.param
    return deployment_settings(**env_a), deployment_settings(**env_b)


def _cache(conf: dict):
    return import_string(conf["BACKEND"])(conf["LOCATION"], conf)


def test_their_caches_share_no_entry(two_deployments):
    a, b = (_cache(d["cache"]) for d in two_deployments)
    key = f"probe-{uuid.uuid4().hex}"
    a.set(key, "a", 30)
    b.set(key, "b", 30)
    try:
        assert (a.get(key), b.get(key)) == ("a", "b")
    finally:
        a.delete(key)
        b.delete(key)


async def test_their_channel_layers_share_no_channel(two_deployments):
    a, b = (RedisChannelLayer(**d["channels"]) for d in two_deployments)
    channel = f"probe-{uuid.uuid4().hex}"
    await a.send(channel, {"type": "probe", "from": "a"})
    await b.send(channel, {"type": "probe", "from": "b"})
    try:
        assert (await b.receive(channel))["from"] == "b"  # one shared channel would hand b a's message first
        assert (await a.receive(channel))["from"] == "a"
    finally:
        await a.flush()
        await b.flush()


def test_their_celery_queues_share_no_task(two_deployments):
    a, b = (Celery(broker=d["broker"], broker_transport_options=d["broker_options"]) for d in two_deployments)
    queue = f"probe-{uuid.uuid4().hex}"
    a.send_task("probe.task", queue=queue)
    with a.connection_for_write() as conn_a, b.connection_for_read() as conn_b:
        try:  # each channel's client puts its deployment's prefix in front of the key itself
            assert (conn_a.default_channel.client.llen(queue), conn_b.default_channel.client.llen(queue)) == (1, 0)
        finally:
            conn_a.default_channel.queue_delete(queue)
