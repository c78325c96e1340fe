"""Liveness and readiness: /healthz says the process answers; /readyz checks PostgreSQL, Redis and NATS, and says
"draining" (503) once the process has begun its shutdown (suho/drain.py), so the load balancer sends it nothing new."""

from __future__ import annotations

import asyncio

import nats
import redis.asyncio as aioredis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connections
from django.http import JsonResponse

from suho.asyncdb import db_thread
from suho.bus import nats_servers
from suho.drain import draining

CHECK_TIMEOUT_S = 2.0


async def healthz(request):
    return JsonResponse({"status": "ok"})


def _database_ok() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")


async def _redis_ok() -> None:
    client = aioredis.from_url(settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT_S)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _nats_ok() -> None:
    connection = await nats.connect(  # a cluster is up while any one of its servers answers
        nats_servers(settings.NATS_URL), connect_timeout=CHECK_TIMEOUT_S, max_reconnect_attempts=0,
        allow_reconnect=False,
    )  # fmt: skip
    await connection.close()


async def _check(name: str, probe) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe(), timeout=CHECK_TIMEOUT_S + 1)
        return name, "ok"
    except Exception as exc:  # noqa: BLE001 — any failure means "not ready", and says which
        return name, f"error: {type(exc).__name__}"


async def _checks() -> dict[str, str]:
    return dict(
        await asyncio.gather(
            _check("database", db_thread(_database_ok)),
            _check("redis", _redis_ok),
            _check("nats", _nats_ok),
        )
    )


def services_health() -> dict[str, str]:
    """/readyz's checks from synchronous code (the operator dashboard): `{"database"|"redis"|"nats": "ok" or
    "error: <exception type>"}`, each bounded by CHECK_TIMEOUT_S."""
    return async_to_sync(_checks)()


async def readyz(request):
    if draining():
        return JsonResponse({"status": "draining", "checks": {}}, status=503)
    results = await _checks()
    ready = all(value == "ok" for value in results.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": results}, status=200 if ready else 503)
