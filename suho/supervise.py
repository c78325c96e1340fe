"""`make run`: prepare the database and streams, then run web (daphne), Celery worker and beat as one group.

Ctrl-C (or SIGTERM) stops every child and waits for it; if one child dies, the others are stopped too. With
`SUHO_DEMO_EA=1` a simulated EA on the demo account (`python -m eaclient.simulate --demo`, a program of its own,
reading the key `seed_demo` wrote under SUHO_STATE_DIR) and a reference feed (`manage.py reference_feed --file -`)
run beside them, both on one demo market (`python -m eaclient.market`, piped into the feed): a live demo that is
optional, so their exit is reported and the rest keeps running. With `WEB_PROCESSES=N` (`make run-cluster N=3`)
N web processes run on free loopback ports behind HAProxy on PORT (suho/cluster.py, docs/operations.md "Scaling
out"). With DEBUG off (`DEBUG=0 make run`, production settings) the static files are collected first: whitenoise
serves them from STATIC_ROOT by their manifest, and a page whose file is missing is a 500.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from suho import cluster

PYTHON = sys.executable
DEMO_STRATEGY_INTERVAL_S = 10  # the reference strategy's beat interval in the demo (its bars stay one minute)
DEMO_TURN_LEAD_S = 45  # the demo market turned this long before the feed starts: a crossover on the next bar
DEMO_MAX_HOLD_S = 20  # the demo EA closes a position this long after it opened (a timed close: SL/TP take longer)
DEMO_BALANCE_INTERVAL_S = 5  # the demo EA's ACCOUNT_FINANCE interval (an EA's default is 30 s)
MANAGE = [PYTHON, "manage.py"]


def prepare() -> None:
    steps = [["db_setup"], ["migrate", "--database", "owner", "--no-input", "-v", "0"], ["nats_setup"], ["seed_demo"]]
    if not debug():  # whitenoise serves STATIC_ROOT's manifest then: without it every page is a 500
        steps.insert(0, ["collectstatic", "--no-input", "-v", "0"])
    for step in steps:
        subprocess.run([*MANAGE, *step], check=True)


def debug() -> bool:
    """DEBUG as suho/settings.py reads it (off unless set), without loading the settings in this process."""
    return os.environ.get("DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def web_children(count: int, port: int) -> dict[str, subprocess.Popen]:
    """One web process on `port`, or `count` of them on free ports behind HAProxy on `port`."""
    if count <= 1:
        return {"web": subprocess.Popen(cluster.web_command(port))}
    ports = [free_port() for _ in range(count)]
    children = {f"web{i}": subprocess.Popen(cluster.web_command(p)) for i, p in enumerate(ports, 1)}
    workdir = Path(tempfile.mkdtemp(prefix="suho-cluster-"))
    host = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")[0].strip() or "localhost"
    children["haproxy"] = cluster.haproxy_start(ports, port=port, workdir=workdir, check_host=host)
    print(f"{count} web processes on 127.0.0.1:{', '.join(map(str, ports))} behind HAProxy on :{port}", flush=True)
    return children


def demo_children(port: str) -> dict[str, subprocess.Popen]:
    """The demo EA and the reference feed on one market (eaclient/market.py) that turned DEMO_TURN_LEAD_S ago: the
    market program writes the half hour before now first, then live quotes, into the feed through a pipe."""
    turn_at = f"{time.time() - DEMO_TURN_LEAD_S:.3f}"
    market = subprocess.Popen([PYTHON, "-m", "eaclient.market", "--turn-at", turn_at], stdout=subprocess.PIPE)
    feed = subprocess.Popen([*MANAGE, "reference_feed", "--source", "replay", "--file", "-"], stdin=market.stdout)
    market.stdout.close()  # the feed's end of the pipe only: the market sees a broken pipe if the feed dies
    ea = [PYTHON, "-m", "eaclient.simulate", "--demo", "--url", f"ws://127.0.0.1:{port}/ws/ea/", "--market-turn-at",
          turn_at, "--max-hold", str(DEMO_MAX_HOLD_S), "--balance-interval", str(DEMO_BALANCE_INTERVAL_S)]  # fmt: skip
    return {"demo-market": market, "reference-feed": feed, "demo-ea": subprocess.Popen(ea)}


def main() -> int:
    port = os.environ.get("PORT", "8000")
    demo_ea = os.environ.get("SUHO_DEMO_EA", "").strip().lower() in {"1", "true", "yes", "on"}
    if demo_ea:  # the whole loop without an external ML engine: reference feed → reference strategy → the EA
        os.environ.setdefault("REFERENCE_STRATEGY_ENABLED", "1")
        os.environ.setdefault("REFERENCE_STRATEGY_INTERVAL_S", str(DEMO_STRATEGY_INTERVAL_S))
    web_processes = int(os.environ.get("WEB_PROCESSES", "1"))
    if web_processes > 1 and not cluster.haproxy_available():
        print(cluster.HAPROXY_MISSING, file=sys.stderr)
        return 1
    prepare()
    children = web_children(web_processes, int(port))
    children |= {
        "worker": subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "suho", "worker", "-l", "info", "-c", "2", "--without-gossip"]
        ),
        "beat": subprocess.Popen([PYTHON, "-m", "celery", "-A", "suho", "beat", "-l", "info"]),
    }
    optional = {"demo-ea", "demo-market", "reference-feed"}
    if demo_ea:
        children |= demo_children(port)
    base = f"http://127.0.0.1:{port}"
    print(
        f"\nSuho is up:\n  portal     {base}/ (log in as demo, with the password seed_demo printed when it made it)\n"
        f"  admin      {base}/admin/ (log in as admin: its password above, then the code from "
        f"python manage.py operator_totp_code)\n"
        f"  API docs   {base}/api/docs/\n"
        f"  EA socket  ws://127.0.0.1:{port}/ws/ea/\nCtrl-C stops everything.\n",
        flush=True,
    )
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in list(children.items()):
            if child.poll() is None:
                continue
            if name in optional:
                print(f"{name} exited with {child.returncode}; the rest keeps running", file=sys.stderr)
                del children[name]
            else:
                print(f"{name} exited with {child.returncode}; stopping the rest", file=sys.stderr)
                exit_code, stopping = child.returncode or 1, True
        time.sleep(0.2)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
