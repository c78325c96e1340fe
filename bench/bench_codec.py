"""Codec benchmark: Suho binary vs the same content as JSON (stdlib json, and orjson when installed), side by side.

    .venv/bin/python bench/bench_codec.py [--repeat 7] [--markdown PATH] [--json]

Each figure is the median of ``--repeat`` timeit runs (each run long enough to last ~0.2 s), with the min–max
spread. No Django, no I/O: the codec alone. ``run()`` and ``markdown()`` are importable for ``make bench``.
"""

import argparse
import json
import platform
import statistics
import sys
import timeit
import uuid
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import binproto as bp

try:
    import orjson
except ImportError:  # optional
    orjson = None

TS = 1_759_667_400_000_000


def v1_packet() -> bp.PriceStream:
    ticks = tuple(
        bp.PriceTick(sid, (109500 + 37 * sid) / 100000, (109520 + 37 * sid) / 100000, 20, server_id=1)
        for sid in range(1, 9)
    )
    return bp.PriceStream(ticks, bp.V1, TS)


def v2_packet(n: int) -> tuple[bp.PriceStream, dict[int, str]]:
    ticks = tuple(
        bp.PriceTick(i, 1.0951 + i, 1.0953 + i, 20, bp.QuoteQuality.GOOD, True, bp.MarketSession.LONDON)
        for i in range(n)
    )
    return bp.PriceStream(ticks, bp.V2, TS), {i: f"SYMBOL{i}.m" for i in range(n)}


def trading_signal() -> bp.TradingSignal:
    return bp.TradingSignal(
        uuid.UUID("12340000-1111-4222-8333-444455556666"), bp.Action.BUY, 1.0953, 1.0951, 1.0955, 1.0932, 1.0982,
        0.1, 1.0, bp.SizingMethod.FIXED_LOTS, 0.87, TS + 300_000_000, 0, "EURUSD", "lstm_v2.3", "trend_follow",
        timestamp_us=TS,
    )  # fmt: skip


RUN_S = 0.05  # one timed run: ≥ 20k calls of a 1 µs decode, long enough to average out timer and scheduler noise


def measure(fn, repeat: int) -> dict:
    timer = timeit.Timer(fn)
    probe = timer.timeit(100) / 100
    number = max(100, int(RUN_S / probe))
    runs = [t / number * 1e6 for t in timer.repeat(repeat=repeat, number=number)]
    return {"median_us": statistics.median(runs), "min_us": min(runs), "max_us": max(runs), "runs": len(runs)}


def cases() -> list[tuple[str, bp.Message, dict | None, bool]]:
    v2_8, names_8 = v2_packet(8)
    v2_64, names_64 = v2_packet(64)
    return [
        ("v1 price, 8 symbols, 144-byte packet", v1_packet(), None, True),
        ("v2 price, 8 symbols", v2_8, names_8, False),
        ("v2 price, 64 symbols", v2_64, names_64, False),
        ("v2 TradingSignal", trading_signal(), None, False),
    ]


def run(repeat: int = 7) -> dict:
    results = []
    for payload, msg, names, pad in cases():
        raw = bp.encode(msg, pad=pad)
        text = bp.to_json(msg)
        doc = bp.to_dict(msg)
        assert bp.decode(raw) == msg and bp.from_json(text) == msg
        is_prices = isinstance(msg, bp.PriceStream)
        ops = []
        if msg.version == bp.V1:  # the gateway's v1 ingest decode: wire records, named and scaled as it builds rows
            ops.append(
                ("decode", "binary → wire records (decode_v1_price_records)", partial(bp.decode_v1_price_records, raw))
            )
        if is_prices:
            ops.append(
                ("decode", "binary → rows (decode_price_rows)", lambda raw=raw, n=names: bp.decode_price_rows(raw, n))
            )
        ops += [
            ("decode", "binary → message (decode)", lambda raw=raw: bp.decode(raw)),
            ("decode", "json.loads → dicts", lambda text=text: json.loads(text)),
            ("decode", "json → message (from_json)", lambda text=text: bp.from_json(text)),
        ]
        if orjson:
            ops += [
                ("decode", "orjson.loads → dicts", lambda text=text: orjson.loads(text)),
                ("decode", "orjson → message (from_dict)", lambda text=text: bp.from_dict(orjson.loads(text))),
            ]
        ops += [
            ("encode", "message → binary (encode)", lambda msg=msg, pad=pad: bp.encode(msg, pad=pad)),
            ("encode", "dicts → json.dumps", lambda doc=doc: json.dumps(doc, separators=(",", ":"))),
            ("encode", "message → json (to_json)", lambda msg=msg: bp.to_json(msg)),
        ]
        if orjson:
            ops += [
                ("encode", "dicts → orjson.dumps", lambda doc=doc: orjson.dumps(doc)),
                ("encode", "message → orjson (to_dict)", lambda msg=msg: orjson.dumps(bp.to_dict(msg))),
            ]
        for op, method, fn in ops:
            size = len(text.encode()) if "json" in method else len(raw)
            results.append({"payload": payload, "op": op, "method": method, "bytes": size, **measure(fn, repeat)})
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "orjson": getattr(orjson, "__version__", None),
        "repeat": repeat,
        "results": results,
        "targets": targets(results),
    }


def _median(results: list[dict], payload: str, method: str) -> float:
    return next(r["median_us"] for r in results if r["payload"].startswith(payload) and r["method"].startswith(method))


def targets(results: list[dict]) -> list[dict]:
    v1 = "v1 price"
    rows = _median(results, v1, "binary → wire records")
    out = [
        {
            "target": "v1 ingest decode (decode_v1_price_records) µs per 144-byte packet",
            "measured": rows,
            "required": "< 2",
            "met": rows < 2,
        },
        {
            "target": "v1 ingest decode vs json.loads of the same content",
            "measured": _median(results, v1, "json.loads") / rows,
            "required": "≥ 8×",
            "met": _median(results, v1, "json.loads") / rows >= 8,
        },
    ]
    for payload in ("v1 price", "v2 price, 8", "v2 price, 64", "v2 TradingSignal"):
        ratio = _median(results, payload, "json → message") / _median(results, payload, "binary → message")
        out.append(
            {
                "target": f"typed decode vs JSON into the same objects: {payload}",
                "measured": ratio,
                "required": "≥ 3×",
                "met": ratio >= 3,
            }
        )
    return out


def markdown(report: dict) -> str:
    lines = [
        f"Python {report['python']} ({report['implementation']}, {report['processor']}), orjson "
        f"{report['orjson'] or 'not installed'}; median of {report['repeat']} runs, min–max in brackets.",
        "",
        "| payload | op | method | bytes | µs (median) | µs (min–max) | × binary |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        base = next(  # each payload's ops come binary first: the ingest's decode, or encode
            x["median_us"] for x in report["results"] if x["payload"] == r["payload"] and x["op"] == r["op"]
        )
        lines.append(
            f"| {r['payload']} | {r['op']} | {r['method']} | {r['bytes']} | {r['median_us']:.2f} | "
            f"{r['min_us']:.2f}–{r['max_us']:.2f} | {r['median_us'] / base:.1f} |"
        )
    lines += ["", "| target | measured | required | met |", "|---|---:|---|---|"]
    for t in report["targets"]:
        unit = " µs" if "µs" in t["target"] else "×"
        lines.append(f"| {t['target']} | {t['measured']:.2f}{unit} | {t['required']} | {'yes' if t['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timeit runs per figure (≥ 5)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the markdown table to PATH")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of markdown")
    args = parser.parse_args()
    report = run(max(args.repeat, 5))
    table = markdown(report)
    if args.markdown:
        Path(args.markdown).write_text(table, encoding="utf-8")
    sys.stdout.write(json.dumps(report, indent=2) + "\n" if args.json else table)


if __name__ == "__main__":
    main()
