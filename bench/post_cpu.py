"""The server's CPU per signal POST: a fresh daphne process (production settings) answering the ML engine's POSTs
back to back; with no EA connected (the default) the figure is the request's alone, bench.delivery's includes the
delivery and the EA's ACK. Steadier than a latency between runs on a shared machine: run it alternately on two
versions of the code to compare them (docs/decisions/0034). With `--profile`, py-spy samples the thread holding the
GIL during one more series, into `.state/bench/post-cpu-profile.txt` (collapsed stacks). With `--connected`, an EA
is connected to each account (as bench.delivery's EAs: it ACKs every signal), so the figure adds the delivery, the
ACK and their SENT/ACK marks. With `--uvicorn`, the same application runs under uvicorn (bench.stack.Uvicorn: httptools,
uvloop) instead, to compare the HTTP servers' cost per POST.

    .venv/bin/python -m suho.devstack exec -- .venv/bin/python -m bench.post_cpu [--series 3] [--profile] \
        [--connected] [--uvicorn]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

SERIES_POSTS = 400
WARM_UP_POSTS = 100
ACCOUNTS = 20
SETTLE_S = 1.0  # before a series, the server's idle rate; after it, its outbox marks committed (post_series_cpu)
PROFILE_S = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=3, help="series of POSTs measured (default 3)")
    parser.add_argument("--profile", action="store_true", help="then py-spy --gil during one more series")
    parser.add_argument("--connected", action="store_true", help="an EA connected to each account, ACKing")
    parser.add_argument("--uvicorn", action="store_true", help="under uvicorn (bench.stack.Uvicorn), not daphne")
    args = parser.parse_args()

    from bench.stack import bench_env

    bench_env()
    import django

    django.setup()
    from bench import profile
    from bench.delivery import _capacity, _post_series, broker_quotes_fresh, post_series_cpu, standalone_setup
    from bench.stack import Daphne, LoadProcess, Uvicorn

    eas, keys, log_dir = standalone_setup(ACCOUNTS)
    accounts = [ea.account_id for ea in eas]
    daphne = (Uvicorn if args.uvicorn else Daphne)(log_dir, name="post-cpu")
    load = None
    try:
        if args.connected:
            config = {"url": daphne.url, "eas": [ea.as_dict() for ea in eas], "connect_concurrency": ACCOUNTS,
                      "on_connect": True, "finance_s": 30.0}  # fmt: skip
            load = LoadProcess(config, log_dir, "post-cpu-eas")
            ready = load.event(120)
            if ready["connected"] != ACCOUNTS:
                raise RuntimeError(f"post_cpu: {ready['connected']} of {ACCOUNTS} EAs connected")
        with broker_quotes_fresh(eas):
            _post_series(daphne.port, keys, accounts, WARM_UP_POSTS, 0.0)
            figures = []
            for _ in range(args.series):
                results, cpu_ms = post_series_cpu(daphne, keys, accounts, SERIES_POSTS, settle_s=SETTLE_S)
                figures.append(cpu_ms)
                print(f"{cpu_ms:.2f} ms of server CPU per POST, {_capacity(results):.0f} POSTs/s", flush=True)
            print(f"median {statistics.median(figures):.2f} ms per POST over {args.series} series of {SERIES_POSTS}")
            if args.profile:
                out = log_dir / "post-cpu-profile.txt"
                recorder = threading.Thread(target=profile.record, args=(daphne.proc.pid, PROFILE_S, out, 500),
                                            kwargs={"gil": True})  # fmt: skip
                recorder.start()
                time.sleep(0.5)
                _post_series(daphne.port, keys, accounts, 2 * SERIES_POSTS, 0.0)
                recorder.join(PROFILE_S + 30)
                print(f"profile: {out}")
        if load is not None:
            closed = load.stop()["closed"]
            print(f"EA connections closed by the server: {dict(closed) or 'none'}")
    finally:
        if load is not None:
            load.kill()
        daphne.stop()


if __name__ == "__main__":
    main()
