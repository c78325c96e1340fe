"""A fake `MetaTrader5` module built from the type stubs Mt5Terminal is checked against: the published
metatrader5-stubs plus our overlay (eaclient/stubs/). Every named tuple it returns has exactly the fields, in the
order, that the stubs declare (a field the stubs lack cannot be read, one they declare cannot be left out), and its
constants are the stubs' values. Its behaviour is a small scripted terminal: a test sets what it answers and reads
what it was asked (`calls`)."""

from __future__ import annotations

import ast
import collections
import types
from typing import Any

from eaclient.stubs.typecheck import OVERLAY, published_stub

DEFAULTS = {"int": 0, "float": 0.0, "str": "", "bool": False}


def stub_source() -> str:
    return published_stub().read_text(encoding="utf-8") + "\n\n" + OVERLAY.read_text(encoding="utf-8")


def stub_shapes() -> tuple[dict[str, list[tuple[str, str]]], dict[str, int], set[str]]:
    """(named tuples: name → [(field, annotation)], integer constants, function names) as the stubs declare them."""
    tree = ast.parse(stub_source())
    tuples: dict[str, list[tuple[str, str]]] = {}
    constants: dict[str, int] = {}
    functions: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(ast.unparse(b) == "NamedTuple" for b in node.bases):
            tuples[node.name] = [
                (item.target.id, ast.unparse(item.annotation))
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            ]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            try:
                constants[node.target.id] = eval(compile(ast.Expression(node.value), "<stub>", "eval"), {})  # noqa: S307  (the stubs' literal int expressions)
            except Exception:  # noqa: BLE001, S112  (a non-literal, e.g. __version__ strings: not a constant we use)
                continue
        elif isinstance(node, ast.FunctionDef):
            functions.add(node.name)
    return tuples, constants, functions


TUPLES, CONSTANTS, FUNCTIONS = stub_shapes()
RECORDS = {name: collections.namedtuple(name, [field for field, _ in fields]) for name, fields in TUPLES.items()}


def record(kind: str, **values: Any) -> Any:
    """A `kind` named tuple with the stubs' fields: `values` where given, else 0 / 0.0 / '' / False by annotation.
    Naming a field the stubs do not declare raises TypeError."""
    fields = dict(TUPLES[kind])
    unknown = set(values) - set(fields)
    if unknown:
        raise TypeError(f"{kind} has no field(s) {sorted(unknown)} in the stubs")
    return RECORDS[kind](**{f: values.get(f, DEFAULTS.get(annotation)) for f, annotation in fields.items()})


class FakeMt5:
    """State and answers of the fake terminal; `module` is what `import MetaTrader5` gives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.initialize_ok = True
        self.login_ok = True
        self.error = (CONSTANTS["RES_S_OK"], "Success")
        self.terminal = record("TerminalInfo", connected=True, trade_allowed=True, build=4755)
        self.account = record(
            "AccountInfo", login=51234567, trade_mode=CONSTANTS["ACCOUNT_TRADE_MODE_DEMO"], leverage=500,
            balance=10000.0, equity=10012.5, margin=109.54, margin_free=9902.96, margin_level=9140.5, profit=12.5,
            currency="USD", company="MetaQuotes Ltd.", server="MetaQuotes-Demo", name="Demo",
        )  # fmt: skip
        self.symbols: dict[str, Any] = {}
        self.selected: set[str] = set()
        self.ticks: dict[str, Any] = {}  # symbol → numpy structured array (copy_ticks_from)
        self.last_tick: dict[str, Any] = {}
        self.positions: list[Any] = []
        self.deals: list[Any] = []
        self.check_retcode = 0
        self.send_results: list[Any] = []  # popped per order_send; None entries mean "no answer"
        self.module = self._module()

    def _record_call(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))

    def called(self, name: str) -> list[tuple[tuple, dict]]:
        return [(args, kwargs) for call, args, kwargs in self.calls if call == name]

    def _module(self) -> types.ModuleType:
        fake = self
        module = types.ModuleType("MetaTrader5")
        for name, value in CONSTANTS.items():
            setattr(module, name, value)
        for name, cls in RECORDS.items():
            setattr(module, name, cls)

        def initialize(path: str = "", **kwargs: Any) -> bool:
            fake._record_call("initialize", *([path] if path else []), **kwargs)
            return fake.initialize_ok

        def login(login: int, /, **kwargs: Any) -> bool:
            fake._record_call("login", login, **kwargs)
            return fake.login_ok

        def shutdown() -> None:
            fake._record_call("shutdown")

        def last_error() -> tuple[int, str]:
            return fake.error

        def terminal_info() -> Any:
            return fake.terminal

        def account_info() -> Any:
            return fake.account

        def symbol_info(symbol: str, /) -> Any:
            info = fake.symbols.get(symbol)
            return (
                None if info is None else info._replace(visible=symbol in fake.selected, select=symbol in fake.selected)
            )

        def symbol_select(symbol: str, enable: bool = True) -> bool:
            fake._record_call("symbol_select", symbol, enable)
            if symbol not in fake.symbols:
                return False
            fake.selected.add(symbol)
            return True

        def symbol_info_tick(symbol: str) -> Any:
            return fake.last_tick.get(symbol)

        def copy_ticks_from(symbol: str, date_from: Any, count: int, flags: int, /) -> Any:
            fake._record_call("copy_ticks_from", symbol, date_from, count, flags)
            return fake.ticks.get(symbol)

        def positions_get(*, symbol: str = "", group: str = "", ticket: int = 0) -> Any:
            fake._record_call("positions_get", ticket=ticket)
            return tuple(p for p in fake.positions if not ticket or p.ticket == ticket)

        def history_deals_get(*args: Any, **kwargs: Any) -> Any:
            fake._record_call("history_deals_get", *args, **kwargs)
            return tuple(fake.deals)

        def order_check(request: dict, /) -> Any:
            fake._record_call("order_check", request)
            comment = "Done" if fake.check_retcode == 0 else "No money"
            return record("OrderCheckResult", retcode=fake.check_retcode, balance=10000.0, comment=comment)

        def order_send(request: dict) -> Any:
            fake._record_call("order_send", request)
            return fake.send_results.pop(0)

        for function in (
            initialize, login, shutdown, last_error, terminal_info, account_info, symbol_info, symbol_select,
            symbol_info_tick, copy_ticks_from, positions_get, history_deals_get, order_check, order_send,
        ):  # fmt: skip
            assert function.__name__ in FUNCTIONS, f"the stubs declare no {function.__name__}"
            setattr(module, function.__name__, function)
        return module


def sent(retcode: int, *, order: int = 0, deal: int = 0, price: float = 0.0, volume: float = 0.0) -> Any:
    """An OrderSendResult as the stubs declare it."""
    return record(
        "OrderSendResult", retcode=retcode, order=order, deal=deal, price=price, volume=volume, comment="", request={}
    )
