"""Signal POST → EA socket over a long steady series, by the second since the EAs connected: whether the slow POSTs
line up with something periodic in the server (decision 0042: daphne's keep-alive pings, all sent in one turn of the
event loop to the connections that went quiet together). 1,000 EAs connect (as bench.delivery's: finance and
positions right after HELLO, then finance every `--finance-s`, 0 for none), then the ML engine POSTs a signal to a
random account `--rate` times a second for `--seconds`; printed: p50/p99/p99.9/max of the POSTs after the first
WARM_UP_S (the process warming up; with ~1,200 POSTs the nearest-rank p99.9 is the second largest), and the largest
latency of each second since the load processes said their EAs were connected (they send their on-connect reports
after that). Run it on two versions of the code to compare them (a git worktree, as bench.post_cpu).

    .venv/bin/python -m suho.devstack exec -- .venv/bin/python -m bench.post_steady [--finance-s 0] [--seconds 50]
"""

from __future__ import annotations

import argparse

EAS = 1_000
PROCESS_EAS = 500
WARM_UP_S = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finance-s", type=float, default=30.0, help="each EA's ACCOUNT_FINANCE period (0: none)")
    parser.add_argument("--rate", type=float, default=25.0, help="signal POSTs per second")
    parser.add_argument("--seconds", type=int, default=50, help="how long the POSTs go on")
    args = parser.parse_args()

    from bench.stack import bench_env

    bench_env()
    import django

    django.setup()
    from bench.delivery import _post_series, broker_quotes_fresh, now_us, standalone_setup
    from bench.stack import Daphne, LoadProcess
    from bench.stats import percentile

    eas, keys, log_dir = standalone_setup(EAS)
    daphne = Daphne(log_dir, name="post-steady")
    loads = []
    try:
        for start in range(0, EAS, PROCESS_EAS):
            config = {"url": daphne.url, "eas": [ea.as_dict() for ea in eas[start : start + PROCESS_EAS]],
                      "connect_concurrency": 20, "on_connect": True, "finance_s": args.finance_s}  # fmt: skip
            loads.append(LoadProcess(config, log_dir, f"post-steady-{start}"))
        ready = [load.event(180) for load in loads]
        if sum(r["connected"] for r in ready) != EAS:
            raise RuntimeError(f"post_steady: {sum(r['connected'] for r in ready)} of {EAS} EAs connected")
        connected_us = now_us()
        with broker_quotes_fresh(eas):
            results = _post_series(daphne.port, keys, [ea.account_id for ea in eas], int(args.seconds * args.rate),
                                   1 / args.rate)  # fmt: skip
        received = {ref: got for load in loads for ref, _issued, got in load.stop()["received"]}
    finally:
        for load in loads:
            load.kill()
        daphne.stop()
    samples = [((r["sent_us"] - connected_us) / 1e6, (received[r["ref"]] - r["sent_us"]) / 1000)
               for r in results if r.get("ref") in received]  # fmt: skip
    first_s = (min(r["sent_us"] for r in results) - connected_us) / 1e6
    steady = [ms for at, ms in samples if at >= first_s + WARM_UP_S]
    if not steady:
        raise SystemExit(f"post_steady: no POST delivered after the first {WARM_UP_S} s")
    figures = ", ".join(f"p{q:g} {percentile(steady, q):.1f}" for q in (50, 99, 99.9))
    print(f"{len(samples)} of {len(results)} POSTs delivered; POST → EA after the first {WARM_UP_S} s "
          f"({len(steady)} POSTs), ms: {figures}, max {max(steady):.1f}")  # fmt: skip
    by_second: dict[int, float] = {}
    for at, ms in samples:
        by_second[int(at)] = max(by_second.get(int(at), 0.0), ms)
    largest = " ".join(f"{second}:{ms:.0f}" for second, ms in sorted(by_second.items()))
    print(f"largest by second since the EAs connected: {largest}")


if __name__ == "__main__":
    main()
