"""mypy checks eaclient against metatrader5-stubs completed by our overlay (`make lint` runs the same), and the
overlay is really in force: a misuse of a call only the overlay declares is an error."""

from __future__ import annotations

import pytest

from eaclient.stubs.typecheck import OVERLAY, published_stub, run

pytestmark = pytest.mark.timeout(120)


def test_eaclient_passes_mypy_with_the_stubs():
    out, err, status = run(["eaclient"])
    assert status == 0, out + err


def test_a_call_only_the_overlay_declares_is_checked(tmp_path):
    bad = tmp_path / "bad_use.py"
    bad.write_text(
        "import MetaTrader5 as mt5\n"
        "info = mt5.account_info()\n"
        "assert info is not None\n"
        "leverage: str = info.leverage\n"  # an int in the documentation
        "mt5.history_deals_get(ticket='x')\n"  # a ticket is an int
        "mt5.symbol_info().no_such_field\n"
    )
    out, _err, status = run([str(bad)])
    assert status == 1
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str")' in out
    assert "history_deals_get" in out and '"SymbolInfo | None" has no attribute "no_such_field"' in out


def test_the_overlay_adds_only_what_the_published_stubs_lack():
    published = published_stub().read_text(encoding="utf-8")
    names = (
        "def login(",
        "def account_info(",
        "def symbol_info(",
        "def copy_ticks_from(",
        "def history_deals_get(",
        "def order_check(",
        "class AccountInfo(",
        "class SymbolInfo(",
        "class TradeDeal(",
        "class OrderCheckResult(",
    )
    for name in names:
        assert name not in published and name in OVERLAY.read_text(encoding="utf-8")
