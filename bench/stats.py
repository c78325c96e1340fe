"""Small statistics and formatting for the report: percentiles, median with spread over runs, table cells."""

from __future__ import annotations

import math
import statistics


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(values: list[float | None]) -> dict:
    """Median and min–max of one figure over repeated runs."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "runs": 0}
    return {"median": statistics.median(present), "min": min(present), "max": max(present), "runs": len(present)}


def num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def cell(figure: dict, digits: int = 0, unit: str = "") -> tuple[str, str]:
    """(median, "min–max (n runs)") for a spread() result."""
    if figure["median"] is None:
        return "–", "–"
    median = num(figure["median"], digits) + unit
    if figure["runs"] == 1:
        return median, "1 run"
    return median, f"{num(figure['min'], digits)}–{num(figure['max'], digits)}{unit} ({figure['runs']} runs)"


def met(ok: bool | None) -> str:
    return "–" if ok is None else ("**yes**" if ok else "**no**")
