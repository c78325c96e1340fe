"""The reference strategy: signals from the reference feed so the whole loop runs without an external ML engine.

A moving-average crossover on one-minute closing reference mids (fast 5, slow 20). On a cross it opens a market
signal for every opted-in account — REFERENCE_STRATEGY_ENABLED on, and the account's
`strategy_parameters["reference_strategy"]` true — through `signal_create`, so broker adjustment, the risk gate,
audit and publication apply as to any ML signal. The active model's calibrated confidence and version go with it.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from accounts.models import MT5Account
from quotes.instruments import pip_size
from quotes.selectors import reference_mids, reference_quote_latest
from signals.learning import model_prediction
from signals.models import TradingSignal
from suho.routers import operator_path

log = logging.getLogger(__name__)

STRATEGY_NAME = "reference_ma_crossover"
FAST, SLOW = 5, 20  # one-minute bars
STOP_LOSS_PIPS, TAKE_PROFIT_PIPS = Decimal(20), Decimal(30)
DEFAULT_VOLUME = Decimal("0.01")
SIGNAL_TTL = timedelta(minutes=5)
OPT_IN = "reference_strategy"


def minute_closes(points: list[tuple[datetime, Decimal]], *, now: datetime) -> list[float]:
    """The last mid of every complete minute before `now`'s minute (a minute with no tick carries the last close)."""
    closes: dict[datetime, float] = {}
    for moment, mid in points:
        closes[moment.replace(second=0, microsecond=0)] = float(mid)
    if not closes:
        return []
    current = now.replace(second=0, microsecond=0)
    minute, last, series = min(closes), None, []
    while minute < current:
        last = closes.get(minute, last)
        series.append(last)
        minute += timedelta(minutes=1)
    return series


def crossover(closes: list[float], *, fast: int = FAST, slow: int = SLOW) -> str | None:
    """BUY when the fast average crosses above the slow one on the last bar, SELL when below, else None."""
    if len(closes) < slow + 1:
        return None

    def gap(series: list[float]) -> float:
        return statistics.fmean(series[-fast:]) - statistics.fmean(series[-slow:])

    before, after = gap(closes[:-1]), gap(closes)
    if before <= 0 < after:
        return "BUY"
    if before >= 0 > after:
        return "SELL"
    return None


def strategy_features(*, symbol: str, closes: list[float]) -> dict:
    """What the model is given for a reference signal: the cross's strength in [0, 1] as the producer confidence
    (the fast-slow gap in units of 5 pips, capped) and the relative volatility of the slow window."""
    window = closes[-SLOW:]
    gap_pips = abs(statistics.fmean(closes[-FAST:]) - statistics.fmean(window)) / float(pip_size(symbol))
    return {
        "confidence": round(min(1.0, gap_pips / 5), 6),
        "volatility": round(statistics.pstdev(window) / statistics.fmean(window), 8),
    }


def _entry_reference(*, symbol: str, action: str, fallback: float) -> Decimal:
    """The latest reference ask (BUY) or bid (SELL), the SL/TP anchor; the last close when there is none."""
    latest = reference_quote_latest(symbol=symbol)
    return Decimal(str(latest["ask" if action == "BUY" else "bid"] if latest else fallback))


def accounts_opted_in() -> list[MT5Account]:
    with operator_path():
        return list(
            MT5Account.objects.filter(is_active=True, trading_enabled=True, emergency_stop=False,
                                      strategy_parameters__contains={OPT_IN: True}).order_by("account_id")
        )  # fmt: skip


def reference_strategy_run(*, now: datetime | None = None) -> list[TradingSignal]:
    """One pass over REFERENCE_SYMBOLS; returns the signals created (accepted or refused by the risk gate)."""
    from signals.services import SignalInvalid, SignalSpec, signal_create

    if not settings.REFERENCE_STRATEGY_ENABLED:
        return []
    now = now or timezone.now()
    accounts = accounts_opted_in()
    if not accounts:
        return []
    created = []
    for symbol in settings.REFERENCE_SYMBOLS:
        closes = minute_closes(reference_mids(symbol=symbol, since=now - timedelta(minutes=SLOW + 5)), now=now)
        action = crossover(closes)
        if action is None:
            continue
        features = strategy_features(symbol=symbol, closes=closes)
        prediction = model_prediction(symbol=symbol, action=action, features=features)
        direction = 1 if action == "BUY" else -1
        price, pip = _entry_reference(symbol=symbol, action=action, fallback=closes[-1]), pip_size(symbol)
        spec = SignalSpec(
            symbol=symbol, action=action, volume=DEFAULT_VOLUME, valid_until=now + SIGNAL_TTL,
            stop_loss=price - direction * STOP_LOSS_PIPS * pip, take_profit=price + direction * TAKE_PROFIT_PIPS * pip,
            confidence_score=None if prediction is None else Decimal(str(round(prediction.confidence, 4))),
            model_version="" if prediction is None else prediction.version, strategy_name=STRATEGY_NAME,
            metadata={"features": features},
        )  # fmt: skip
        bar = now.replace(second=0, microsecond=0)
        for account in accounts:
            if account.allowed_symbols and symbol not in account.allowed_symbols:
                continue
            volume = Decimal(str(account.strategy_parameters.get("reference_volume", DEFAULT_VOLUME)))
            try:
                created.append(
                    signal_create(
                        tenant_id=account.tenant_id, account_id=account.account_id,
                        payload=dataclasses.replace(spec, volume=volume),
                        source=TradingSignal.Source.REFERENCE_MODEL,
                        client_signal_id=f"ref-{symbol}-{action}-{bar:%Y%m%d%H%M}", actor="reference_strategy",
                    )
                )  # fmt: skip
            except SignalInvalid as exc:
                log.warning("reference strategy: %s %s for %s refused: %s", action, symbol, account.pk, exc.message)
    return created
