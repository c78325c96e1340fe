#!/bin/sh
# Flakiness check: `make test` N times in a row (default 10) while a busy loop keeps another core at 100 %, stopping
# at the first failure. Run from the checkout: `bench/flaky_loop.sh 10`; PYTEST_ARGS narrows each run as for make
# test (`PYTEST_ARGS="tests/gateway -q" bench/flaky_loop.sh 20`). No test is retried: a run either passes or stops the
# loop, and its output is kept in .state/flaky_loop/run-<n>.log.
set -u
runs=${1:-10}
logs=.state/flaky_loop
mkdir -p "$logs"
sh -c 'while :; do :; done' &
busy=$!
trap 'kill "$busy" 2>/dev/null' EXIT INT TERM
n=1
while [ "$n" -le "$runs" ]; do
    started=$(date +%s)
    if make test PYTEST_ARGS="${PYTEST_ARGS:-}" >"$logs/run-$n.log" 2>&1; then
        echo "run $n/$runs passed in $(( $(date +%s) - started )) s"
    else
        echo "run $n/$runs FAILED after $(( $(date +%s) - started )) s; log: $logs/run-$n.log"
        tail -n 30 "$logs/run-$n.log"
        exit 1
    fi
    n=$((n + 1))
done
echo "all $runs runs passed under load"
