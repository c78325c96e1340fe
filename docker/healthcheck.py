"""Container health checks for the one image: `python docker/healthcheck.py web|worker|beat`; exit 0 = healthy.

- web: GET /healthz on the local daphne. The request carries a Host that ALLOWED_HOSTS accepts: with DEBUG off
  Django answers 400 to any other Host, which would read as "unhealthy" for the wrong reason.
- worker: this container's Celery worker answers a ping over the broker.
- beat: the broker is reachable (beat has no endpoint of its own; if the process dies, the container stops).
"""

from __future__ import annotations

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


CHECKS = {"web": check_web, "worker": check_worker, "beat": check_beat}


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
