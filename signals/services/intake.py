"""Signal intake (issue 6 items 1, 3, 4): validate, adjust to each account's broker quote, risk-gate, record, publish.

One path for every producer (ML engine over REST, TradingView webhook, reference model): `signal_submit` for one
account or a broadcast, `signal_create` for one account. A request that is wrong in itself raises `SignalInvalid`
and writes nothing. A well-formed signal is always recorded (PENDING, audited); if the account cannot take it
(no fresh broker quote, a risk limit) it moves PENDING → REJECTED with the reason, audited, and nothing is sent.
Otherwise it is published to its EA after commit.

Idempotent on the producer's id (`client_signal_id`, the seed JSON's `signal_id`): the same id returns the signal(s)
already recorded and writes nothing, also when two copies race (the database's unique constraint decides: for one
account it is the only check, and a repeat's transaction is rolled back before the recorded signal is read), and
also when the market has moved since so that the repeat itself would now be refused.
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone
from rest_framework.status import HTTP_422_UNPROCESSABLE_ENTITY

from accounts.models import MT5Account, Tenant
from quotes.instruments import PIP_SIZES, normalise_symbol
from quotes.selectors import quote_latest, reference_bid_ask_since, reference_bid_ask_statement
from signals import lifecycle
from signals.delivery import signal_publish_statement
from signals.models import TradingSignal
from signals.selectors import account_loss_figures_from, account_loss_figures_statement
from signals.services.adjustment import signal_adjust
from signals.services.lifecycle import signal_transition
from signals.services.risk import risk_check
from suho.api_errors import ApiError
from suho.audit import audit_statement
from suho.models import OutboxMessage
from suho.outbox import outbox_inserted
from suho.sql import CompiledRead, compiled_read, insert_statement, statements_in_context, tenant_statements
from suho.tenancy import tenant_context, tenant_context_on_first_query

SIGNAL_UNKNOWN_ACCOUNT = "No MT5 account {account_id} in this tenant."
SIGNAL_NO_ELIGIBLE_ACCOUNT = "No account of this tenant can take a broadcast (none is active with trading enabled)."
SIGNAL_UNKNOWN_SYMBOL = "Unknown symbol {symbol!r}: not a currency pair, metal, index, energy or crypto symbol."
SIGNAL_INVALID_ACTION = "action must be BUY or SELL, got {action!r}."
SIGNAL_PRICE_NOT_POSITIVE = "{name} must be a positive price, got {value}."
SIGNAL_PRICE_TOO_LARGE = "{name} must be below {limit}, got {value}."
SIGNAL_STOP_LOSS_WRONG_SIDE = "For a {action} the stop loss must be {side} the entry price {entry}, got {stop_loss}."
SIGNAL_TAKE_PROFIT_WRONG_SIDE = (
    "For a {action} the take profit must be {side} the entry price {entry}, got {take_profit}."
)
SIGNAL_EXPIRED = "valid_until {valid_until} has already passed."
SIGNAL_VOLUME_OUT_OF_RANGE = "volume must be more than 0 and at most {limit} lots, got {volume}."
SIGNAL_CONFIDENCE_OUT_OF_RANGE = "confidence_score must be between 0 and 1, got {confidence}."
SIGNAL_NO_FRESH_QUOTE = "no fresh broker quote for {symbol} (none, or older than {max_age_s} s)"

BROADCAST = "broadcast"
MAX_VOLUME_LOTS = Decimal(100)
# suho.fields.price holds 12 integer digits; two are left for the broker adjustment (SL/TP move by the deviation).
MAX_PRICE = Decimal(10_000_000_000)
DEFAULT_TTL = timedelta(minutes=5)
PRICE_PLACES, VOLUME_PLACES, CONFIDENCE_PLACES = Decimal("1e-8"), Decimal("1e-4"), Decimal("1e-4")
CURRENCIES = frozenset(
    "USD EUR GBP JPY CHF AUD NZD CAD SEK NOK DKK PLN HUF CZK TRY ZAR MXN SGD HKD CNH CNY ILS THB".split()
)


class SignalInvalid(ApiError):
    """A request that cannot become a signal; `code` names the rule, `message` says what to fix. Nothing written.
    The API answers 422."""

    http_status = HTTP_422_UNPROCESSABLE_ENTITY

    def __init__(self, code: str, message: str):
        super().__init__(message, code=code)


@dataclass(frozen=True)
class SignalSpec:
    """What a producer asks for (seed §5.2), prices on the reference feed; parsed, not yet validated."""

    symbol: str
    action: str
    volume: Decimal
    valid_until: datetime | None = None
    entry_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    confidence_score: Decimal | None = None
    model_version: str = ""
    strategy_name: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Submission:
    signals: list[TradingSignal]
    created: bool  # False: the producer's id was seen before and these are the signals recorded then
    broadcast_id: UUID | None


@dataclass(frozen=True)
class _Reference:
    price: Decimal | None  # the ask (BUY) or bid (SELL) the producer priced on
    bid: Decimal | None
    ask: Decimal | None
    source: str


def signal_create(
    *, tenant_id: UUID, account_id: UUID | str, payload: SignalSpec, source: str, client_signal_id: str = "",
    actor: str = "",
) -> TradingSignal:  # fmt: skip
    """One account's signal; see `signal_submit`."""
    return signal_submit(
        tenant_id=tenant_id, account_id=account_id, payload=payload, source=source,
        client_signal_id=client_signal_id, actor=actor,
    ).signals[0]  # fmt: skip


def signal_submit(
    *, tenant_id: UUID, account_id: UUID | str, payload: SignalSpec, source: str, client_signal_id: str = "",
    actor: str = "",
) -> Submission:  # fmt: skip
    """Record a signal for one account, or for every eligible account of the tenant when `account_id` is
    "broadcast" (one row each, sharing a `broadcast_id`, each adjusted to its own broker quote).

    Raises SignalInvalid (nothing written). Runs in the tenant's context, on the service role; the signals, their
    audit rows and outbox rows are written in one transaction, and published after it commits.
    """
    now = timezone.now()
    spec = _validated(payload, now)
    broadcast = account_id == BROADCAST
    actor = actor or source
    opened = {"spec": spec, "source": source, "client_signal_id": client_signal_id, "now": now, "actor": actor}
    try:
        if not broadcast:
            # One account's repeat is found by its insert (the unique constraint, then the except below): a round
            # trip fewer on every new signal (issue 21).
            return Submission([_signal_one(tenant_id=tenant_id, account_id=account_id, **opened)], True, None)
        with tenant_context(tenant_id):
            # A broadcast is looked up first: its eligible accounts may have changed since, so its insert alone
            # would not always meet the recorded ones.
            if existing := _existing(client_signal_id=client_signal_id, account_id=account_id, broadcast=True):
                return Submission(existing, False, existing[0].broadcast_id)
            broadcast_id = uuid.uuid4()
            accounts, reference = _broadcast_accounts_read(spec=spec, now=now)
            signals = [
                _signal_recorded(
                    _signal_prepared(
                        account=account, broadcast_id=broadcast_id, reference=reference, loss_figures=None, **opened
                    )
                )
                for account in accounts
            ]
    except (IntegrityError, SignalInvalid):
        # The same producer id, recorded before or by a concurrent request in the meantime. A repeat can also fail
        # today's checks (a market signal whose stop loss the price has passed since): the recorded one answers.
        if not client_signal_id:
            raise
        with tenant_context(tenant_id):
            existing = _existing(client_signal_id=client_signal_id, account_id=account_id, broadcast=broadcast)
        if not existing:
            raise
        return Submission(existing, False, existing[0].broadcast_id)
    return Submission(signals, True, broadcast_id)


# --- validation (nothing is read or written) ----------------------------------------------------------------------


def _validated(spec: SignalSpec, now: datetime) -> SignalSpec:
    action = str(spec.action).strip().upper()
    if action not in ("BUY", "SELL"):
        raise SignalInvalid("invalid_action", SIGNAL_INVALID_ACTION.format(action=spec.action))
    symbol = str(spec.symbol).strip()
    if not symbol_known(symbol):
        raise SignalInvalid("unknown_symbol", SIGNAL_UNKNOWN_SYMBOL.format(symbol=spec.symbol))
    volume = _decimal(spec.volume)
    if volume is None or not Decimal(0) < volume <= MAX_VOLUME_LOTS:
        raise SignalInvalid(
            "volume_out_of_range", SIGNAL_VOLUME_OUT_OF_RANGE.format(limit=MAX_VOLUME_LOTS, volume=spec.volume)
        )
    confidence = _decimal(spec.confidence_score)
    if spec.confidence_score is not None and (confidence is None or not Decimal(0) <= confidence <= Decimal(1)):
        raise SignalInvalid(
            "confidence_out_of_range", SIGNAL_CONFIDENCE_OUT_OF_RANGE.format(confidence=spec.confidence_score)
        )
    valid_until = spec.valid_until or now + DEFAULT_TTL
    if valid_until <= now:
        raise SignalInvalid("expired", SIGNAL_EXPIRED.format(valid_until=valid_until.isoformat()))
    prices = {}
    for name in ("entry_price", "stop_loss", "take_profit"):
        value = getattr(spec, name)
        if value is not None:
            prices[name] = _decimal(value)
            if prices[name] is None or prices[name] <= 0:
                raise SignalInvalid("invalid_price", SIGNAL_PRICE_NOT_POSITIVE.format(name=name, value=value))
            if prices[name] >= MAX_PRICE:
                raise SignalInvalid("invalid_price", SIGNAL_PRICE_TOO_LARGE.format(name=name, limit=MAX_PRICE,
                                                                                  value=value))  # fmt: skip
    if prices.get("entry_price") is not None:
        check_sides(action=action, entry=prices["entry_price"], stop_loss=prices.get("stop_loss"),
                    take_profit=prices.get("take_profit"))  # fmt: skip
    return replace(
        spec, symbol=symbol, action=action, volume=volume.quantize(VOLUME_PLACES), valid_until=valid_until,
        confidence_score=None if confidence is None else confidence.quantize(CONFIDENCE_PLACES),
        entry_price=_q(prices.get("entry_price")), stop_loss=_q(prices.get("stop_loss")),
        take_profit=_q(prices.get("take_profit")), metadata=dict(spec.metadata or {}),
    )  # fmt: skip


def check_sides(*, action: str, entry: Decimal, stop_loss: Decimal | None, take_profit: Decimal | None) -> None:
    """BUY: stop loss below and take profit above the entry; SELL the other way round. Raises SignalInvalid."""
    below, above = ("below", "above") if action == "BUY" else ("above", "below")
    if stop_loss is not None and not (stop_loss < entry if action == "BUY" else stop_loss > entry):
        raise SignalInvalid(
            "stop_loss_wrong_side",
            SIGNAL_STOP_LOSS_WRONG_SIDE.format(action=action, side=below, entry=entry, stop_loss=stop_loss),
        )
    if take_profit is not None and not (take_profit > entry if action == "BUY" else take_profit < entry):
        raise SignalInvalid(
            "take_profit_wrong_side",
            SIGNAL_TAKE_PROFIT_WRONG_SIDE.format(action=action, side=above, entry=entry, take_profit=take_profit),
        )


def symbol_known(symbol: str) -> bool:
    """A currency pair of known currencies, or a metal, index, energy or crypto symbol `quotes.instruments` prices.

    Broker suffixes are allowed (`EURUSD.m`); whether this account's broker offers it shows as a missing quote."""
    if not symbol or len(symbol) > 32:
        return False
    name = normalise_symbol(symbol)
    if len(name) == 6 and name[:3] in CURRENCIES and name[3:] in CURRENCIES:
        return True
    return any(re.match(pattern, name) for pattern, _size in PIP_SIZES)


# --- recording ----------------------------------------------------------------------------------------------------


def _existing(*, client_signal_id: str, account_id, broadcast: bool) -> list[TradingSignal]:
    if not client_signal_id:
        return []
    signals = TradingSignal.objects.filter(client_signal_id=client_signal_id)
    if broadcast:
        signals = signals.filter(broadcast_id__isnull=False)
    else:
        account_uuid = _uuid(account_id)
        if account_uuid is None:
            return []
        signals = signals.filter(account_id=account_uuid)
    return list(signals.order_by("time", "account_id"))


# Stand-ins for the ids each single-account intake puts into its compiled reads (random ids nothing has).
INTAKE_ACCOUNT, INTAKE_TENANT = uuid.uuid4(), uuid.uuid4()


@functools.cache
def _account_reads() -> tuple[CompiledRead, ...]:
    """The account and its tenant (the risk gate reads the tenant's switch), compiled once per process: building
    the select_related queryset's SQL on every POST was ~15 % of its CPU (issue 21)."""
    return (
        compiled_read(MT5Account.objects.filter(account_id=INTAKE_ACCOUNT), (INTAKE_ACCOUNT,)),
        compiled_read(Tenant.objects.filter(id=INTAKE_TENANT), (INTAKE_TENANT,)),
    )


def _broadcast_accounts_read(*, spec: SignalSpec, now: datetime) -> tuple[list[MT5Account], _Reference]:
    """In the tenant's context (RLS: its own rows only): every eligible account and the reference price. Each
    account's loss figures are read by the risk gate."""
    eligible = list(
        MT5Account.objects.select_related("tenant")
        .filter(is_active=True, trading_enabled=True, emergency_stop=False)
        .order_by("created_at")
    )
    if not eligible:
        raise SignalInvalid("no_eligible_account", SIGNAL_NO_ELIGIBLE_ACCOUNT)
    return eligible, _reference(spec, reference_bid_ask_since(symbols=_symbols(spec), since=_quote_since(now)))


def _signal_one(
    *, tenant_id: UUID, account_id, spec: SignalSpec, source: str, client_signal_id: str, now: datetime, actor: str
) -> TradingSignal:  # fmt: skip
    """One account's signal in two database round trips, each one transaction under the tenant's context: the
    reads (the account, its tenant, the reference quote, the risk gate's loss figures), then the signal with its
    audit and outbox rows, published once that commits. Between them the broker quote comes from the cache; a
    cache miss reads the database in a transaction of its own. A refused signal is recorded and rejected in one
    transaction. (Issue 21: with BEGIN, the tenant setting and COMMIT sent on their own, this was five.)"""
    account_uuid = _uuid(account_id)
    if account_uuid is None:
        raise SignalInvalid("unknown_account", SIGNAL_UNKNOWN_ACCOUNT.format(account_id=account_id))
    account_read, tenant_read = _account_reads()
    values = {INTAKE_ACCOUNT: account_uuid, INTAKE_TENANT: tenant_id}
    accounts, tenants, references, figures = tenant_statements(tenant_id, [
        account_read.statement(values),
        tenant_read.statement(values),
        reference_bid_ask_statement(symbols=_symbols(spec), since=_quote_since(now)),
        account_loss_figures_statement(account_id=account_uuid),
    ])  # fmt: skip
    accounts, tenants = account_read.instances(accounts), tenant_read.instances(tenants)
    if not accounts or not tenants:
        raise SignalInvalid("unknown_account", SIGNAL_UNKNOWN_ACCOUNT.format(account_id=account_id))
    account = accounts[0]
    account.tenant = tenants[0]  # as select_related("tenant") would
    with tenant_context_on_first_query(tenant_id):  # only a cache miss or an old snapshot reads here
        prepared = _signal_prepared(
            account=account, spec=spec, source=source, client_signal_id=client_signal_id, broadcast_id=None, now=now,
            actor=actor, reference=_reference(spec, references[0] if references else None),
            loss_figures=account_loss_figures_from(figures[0], account=account),
        )  # fmt: skip
    if prepared.refusal:
        with tenant_context(tenant_id):
            return _signal_recorded(prepared)
    results = tenant_statements(tenant_id, prepared.statements)  # a repeated producer id fails the first
    outbox_inserted(prepared.message, results[-1])  # committed: published now (in a caller's transaction, at its end)
    return prepared.signal


def _symbols(spec: SignalSpec) -> list[str]:
    return sorted({spec.symbol, normalise_symbol(spec.symbol)})


def _quote_since(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.SIGNAL_MAX_QUOTE_AGE_S)


@dataclass(frozen=True)
class _Prepared:
    """A signal adjusted and gated, not yet written: its INSERTs (signal, audit, outbox if it goes out)."""

    signal: TradingSignal
    statements: list[tuple[str, list]]
    message: OutboxMessage | None  # its outbox row, unless refused
    refusal: str


def _signal_prepared(
    *, account: MT5Account, spec: SignalSpec, source: str, client_signal_id: str, broadcast_id: UUID | None,
    now: datetime, actor: str, reference: _Reference, loss_figures: tuple | None,
) -> _Prepared:  # fmt: skip
    """Adjust and gate one account's signal and build its writes (in the tenant's context: the cache misses read)."""
    fields = {
        "time": now, "tenant_id": account.tenant_id, "account": account, "client_signal_id": client_signal_id,
        "broadcast_id": broadcast_id, "source": source, "symbol": spec.symbol, "action": spec.action,
        "entry_price": spec.entry_price, "stop_loss": spec.stop_loss, "take_profit": spec.take_profit,
        "volume": spec.volume, "valid_until": spec.valid_until, "confidence_score": spec.confidence_score,
        "model_version": spec.model_version[:64], "strategy_name": spec.strategy_name[:64],
        "sizing_method": account.sizing_method, "risk_percent": account.risk_percent,
        "original_entry_price": spec.entry_price, "original_stop_loss": spec.stop_loss,
        "original_take_profit": spec.take_profit, "polygon_bid": reference.bid, "polygon_ask": reference.ask,
        "metadata": {**spec.metadata, "reference_source": reference.source,
                     "reference_price": None if reference.price is None else str(reference.price)},
    }  # fmt: skip
    # an older quote would refuse the signal anyway: it is not read either
    quote = quote_latest(account_id=account.account_id, symbol=spec.symbol, since=_quote_since(now))
    if not quote_fresh(quote, now):
        refusal = SIGNAL_NO_FRESH_QUOTE.format(symbol=spec.symbol, max_age_s=settings.SIGNAL_MAX_QUOTE_AGE_S)
    else:
        broker_bid, broker_ask = Decimal(str(quote["bid"])), Decimal(str(quote["ask"]))
        adjusted = signal_adjust(
            symbol=spec.symbol, action=spec.action, reference_price=reference.price, broker_bid=broker_bid,
            broker_ask=broker_ask, stop_loss=spec.stop_loss, take_profit=spec.take_profit,
            slippage_tolerance_pips=account.slippage_tolerance_pips,
        )  # fmt: skip
        if spec.entry_price is None:  # a market signal: its SL/TP are checked against the price it will get
            check_sides(action=spec.action, entry=adjusted.entry_price, stop_loss=adjusted.stop_loss,
                        take_profit=adjusted.take_profit)  # fmt: skip
        fields |= {
            "entry_price": adjusted.entry_price, "entry_price_min": adjusted.entry_price_min,
            "entry_price_max": adjusted.entry_price_max, "stop_loss": adjusted.stop_loss,
            "take_profit": adjusted.take_profit, "broker_bid": broker_bid, "broker_ask": broker_ask,
            "price_deviation": adjusted.price_deviation, "deviation_pips": adjusted.deviation_pips,
        }  # fmt: skip
        fields["metadata"] |= {  # seed §5.2's metadata, as computed here (whatever the producer sent)
            "broker_bid": float(broker_bid), "broker_ask": float(broker_ask),
            "deviation_pips": float(adjusted.deviation_pips),
        }  # fmt: skip
        decision = risk_check(
            account=account, symbol=spec.symbol, action=spec.action, volume=spec.volume,
            entry_price=adjusted.entry_price, stop_loss=adjusted.stop_loss, spread_points=quote.get("spread"),
            now=now, loss_figures=loss_figures,
        )  # fmt: skip
        fields["volume"], refusal = decision.volume, decision.refusal
    # One round trip for the signal, its audit row and, if it goes out, its outbox row (issue 21: each was its own,
    # and the signal's insert is what delays its delivery to the EA).
    signal = TradingSignal(**fields)
    statements = [
        insert_statement(signal),
        audit_statement(
            tenant_id=account.tenant_id, event_type="signal_created", category="signal", action="create",
            description=f"{signal} from {actor}", account_id=account.account_id,
            metadata={"signal_id": str(signal.signal_id), "source": source, "actor": actor,
                      "client_signal_id": client_signal_id, "broadcast_id": broadcast_id,
                      "reference_source": reference.source, "price_deviation": fields.get("price_deviation")},
        ),
    ]  # fmt: skip
    message = None
    if not refusal:
        message, publish = signal_publish_statement(signal)
        statements.append(publish)
    return _Prepared(signal, statements, message, refusal)


def _signal_recorded(prepared: _Prepared) -> TradingSignal:
    """Write a prepared signal in the caller's tenant context and transaction: published after its commit, or, if
    refused, moved PENDING → REJECTED with the reason. A repeated producer id fails the first INSERT."""
    results = statements_in_context(prepared.statements)
    if prepared.refusal:
        return signal_transition(signal=prepared.signal, to=lifecycle.REJECTED, reason=prepared.refusal,
                                 actor="risk_gate")  # fmt: skip
    outbox_inserted(prepared.message, results[-1])
    return prepared.signal


def _reference(spec: SignalSpec, row: tuple[Decimal, Decimal] | None) -> _Reference:
    """The reference price the producer priced on: the reference feed's latest quote (`row`, if fresh), else the
    producer's own `polygon_ask`/`polygon_bid` metadata, else its entry price; None: none of them."""
    if row is not None:
        bid, ask = row
        return _Reference(ask if spec.action == "BUY" else bid, bid, ask, "reference_feed")
    bid, ask = _decimal(spec.metadata.get("polygon_bid")), _decimal(spec.metadata.get("polygon_ask"))
    price = ask if spec.action == "BUY" else bid
    if price is not None and price > 0:
        return _Reference(price, bid, ask, "producer")
    if spec.entry_price is not None:
        return _Reference(spec.entry_price, None, None, "signal_entry")
    return _Reference(None, None, None, "none")


def quote_fresh(quote: dict | None, now: datetime) -> bool:
    """A broker quote no older than SIGNAL_MAX_QUOTE_AGE_S (docs/decisions/0005: a stale quote is not guessed)."""
    if quote is None or not quote.get("timestamp"):
        return False
    age = now - datetime.fromisoformat(quote["timestamp"])
    return age <= timedelta(seconds=settings.SIGNAL_MAX_QUOTE_AGE_S)


def _decimal(value) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _q(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(PRICE_PLACES)


def _uuid(value) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        return None
