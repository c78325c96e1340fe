"""Instrument facts the money maths needs: pip size per symbol (JPY pairs, metals and indices differ).

One table, used by the Python services and rendered into the SQL function `suho_pip_size()` the triggers use.
Broker suffixes (`EURUSD.m`, `XAUUSD+`) are stripped before the look-up.
"""

from __future__ import annotations

import re
from decimal import Decimal

DEFAULT_PIP = Decimal("0.0001")
# Ordered: the first pattern that matches the normalised symbol wins.
PIP_SIZES: tuple[tuple[str, Decimal], ...] = (
    (r"^XAU", Decimal("0.1")),
    (r"^XAG", Decimal("0.01")),
    (r"^(XPT|XPD)", Decimal("0.1")),
    (r"^[A-Z]{3}JPY", Decimal("0.01")),
    (r"^(BTC|ETH)", Decimal("1")),
    (r"^(US30|US500|NAS100|USTEC|SPX|DJ30|GER40|DE40|UK100|JP225|FRA40|AUS200|HK50)", Decimal("1")),
    (r"^(WTI|BRENT|USOIL|UKOIL|XTI|XBR)", Decimal("0.01")),
)
SUFFIX = re.compile(r"[^A-Z0-9].*$")


def normalise_symbol(symbol: str) -> str:
    """`eurusd.m` → `EURUSD`, `XAUUSD+` → `XAUUSD`, `US30.cash` → `US30`."""
    return SUFFIX.sub("", symbol.upper())


def pip_size(symbol: str) -> Decimal:
    name = normalise_symbol(symbol)
    for pattern, size in PIP_SIZES:
        if re.match(pattern, name):
            return size
    return DEFAULT_PIP


def pip_size_sql() -> str:
    """`suho_pip_size(symbol)` in SQL, rendered from PIP_SIZES so both sides agree."""
    cases = "\n".join(f"        WHEN s ~ '{pattern}' THEN {size}" for pattern, size in PIP_SIZES)
    return f"""
    CREATE OR REPLACE FUNCTION suho_pip_size(symbol text) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT CASE
{cases}
        ELSE {DEFAULT_PIP}
      END FROM (SELECT regexp_replace(upper(symbol), '[^A-Z0-9].*$', '') AS s) AS normalised
    $$
    """
