"""A password-login flood against a running server (issue 15 item 9): 32 parallel bad `/api/token/` log-ins from one
address for 15 s, while one client times an unrelated request (`GET /accounts/login/`) every 100 ms.

    python -m bench.login_flood [--url http://127.0.0.1:8000] [--workers 32] [--seconds 15]

Prints the flood's answers by status and the unrelated request's latency (idle before the flood, and during it).
Not part of `make bench`: it needs a server with the code under test (`make run`), and its numbers depend on the
machine's other load.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

from bench.stats import percentile


def _request(url: str, body: bytes | None = None) -> tuple[int, float]:
    started = time.perf_counter()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as refused:
        status = refused.code
    except OSError:
        status = 0
    return status, (time.perf_counter() - started) * 1000


def _probe(url: str, until: float, out: list[float]) -> None:
    while time.monotonic() < until:
        out.append(_request(url)[1])
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    probe_url = f"{args.url}/accounts/login/"

    idle: list[float] = []
    _probe(probe_url, time.monotonic() + 3, idle)

    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    until = time.monotonic() + args.seconds
    body = json.dumps({"username": "flood-victim", "password": "not the password"}).encode()

    def flood() -> None:
        while time.monotonic() < until:
            status, _ = _request(f"{args.url}/api/token/", body)
            with lock:
                statuses[status] += 1

    during: list[float] = []
    threads = [threading.Thread(target=flood) for _ in range(args.workers)]
    threads.append(threading.Thread(target=_probe, args=(probe_url, until, during)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    print(json.dumps({
        "flood": {"workers": args.workers, "seconds": args.seconds, "answers": dict(sorted(statuses.items()))},
        "unrelated_ms": {
            "idle_p50": round(percentile(idle, 50), 1), "idle_p95": round(percentile(idle, 95), 1),
            "flood_p50": round(percentile(during, 50), 1), "flood_p95": round(percentile(during, 95), 1),
            "flood_max": round(max(during), 1), "samples": len(during),
        },
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
