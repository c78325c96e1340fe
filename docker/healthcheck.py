"""Container health checks for the one image: `python docker/healthcheck.py SERVICE`; exit 0 = healthy.

- web: GET /healthz on the local daphne. The request carries a Host that ALLOWED_HOSTS accepts: with DEBUG off
  Django answers 400 to any other Host, which would read as "unhealthy" for the wrong reason.
- worker: this container's Celery worker answers a ping over the broker.
- beat: the broker is reachable (beat has no endpoint of its own; if the process dies, the container stops).
- data_bridge: NATS answers and the bridges' durable consumer is on SUHO_INGEST (each bridge makes it on start).
- signal_intake: a request on `ml.signals` without a key is answered `not_authenticated` by a signal intake.

The image's own HEALTHCHECK is web's: every other service sets its own or disables it in compose.yaml.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import urllib.request

WEB_PORT = 8000  # the image's CMD binds daphne here
TIMEOUT_S = 4


def _host_header() -> str:
    from django.conf import settings

    for host in settings.ALLOWED_HOSTS:
        if host != "*":
            return host.lstrip(".")  # ".example.com" allows example.com itself
    return "localhost"


def check_web() -> bool:
    request = urllib.request.Request(f"http://127.0.0.1:{WEB_PORT}/healthz", headers={"Host": _host_header()})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (fixed local URL)
        return response.status == 200


def check_worker() -> bool:
    from suho.celery import app

    replies = app.control.ping(destination=[f"celery@{socket.gethostname()}"], timeout=TIMEOUT_S)
    return bool(replies)


def check_beat() -> bool:
    from suho.celery import app

    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=TIMEOUT_S)
    return True


async def _nats_probe(probe):
    """Connect once, bounded: nats.py retries a first connection for ever otherwise, logging each failure."""
    import nats
    from django.conf import settings

    from suho.bus import nats_servers  # NATS_URL may list a cluster's servers

    async def quiet(_error: Exception) -> None:
        pass

    try:
        async with asyncio.timeout(TIMEOUT_S):
            connection = await nats.connect(nats_servers(settings.NATS_URL), allow_reconnect=False, error_cb=quiet)
    except TimeoutError:
        raise ConnectionError(f"NATS at {settings.NATS_URL} did not answer within {TIMEOUT_S} s") from None
    try:
        return await probe(connection)
    finally:
        await connection.close()


def check_data_bridge() -> bool:
    import django

    django.setup()
    from trading.bridge import DURABLE, INGEST_STREAM

    async def probe(connection) -> bool:
        info = await connection.jetstream(timeout=TIMEOUT_S).consumer_info(INGEST_STREAM, DURABLE)
        return info.name == DURABLE

    return asyncio.run(_nats_probe(probe))


def check_signal_intake() -> bool:
    import django

    django.setup()
    from signals.intake_nats import SUBJECT

    async def probe(connection) -> bool:
        reply = await connection.request(SUBJECT, b"{}", timeout=TIMEOUT_S)
        return json.loads(reply.data).get("error", {}).get("code") == "not_authenticated"

    return asyncio.run(_nats_probe(probe))


CHECKS = {
    "web": check_web,
    "worker": check_worker,
    "beat": check_beat,
    "data_bridge": check_data_bridge,
    "signal_intake": check_signal_intake,
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "suho.settings")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        healthy = CHECKS[argv[0]]()
    except Exception as exc:  # noqa: BLE001 — any failure is "unhealthy", and says why
        print(f"{argv[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{argv[0]}: {'ok' if healthy else 'no answer'}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
