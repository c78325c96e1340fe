"""The reference strategy: a moving-average cross on reference mids becomes a signal carrying the model's confidence."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from factories import make_account
from feedback_factory import feedback_generate

from quotes.models import ReferenceQuote
from signals.learning import model_confidence, model_retrain
from signals.learning_tasks import reference_strategy_task
from signals.models import TradingSignal
from signals.reference_strategy import STRATEGY_NAME, crossover, minute_closes, reference_strategy_run
from suho.cache import QUOTE_TTL_S, cache_client, cache_set_many, quote_key, reference_quote_key
from suho.routers import operator_path
from suho.schedules import BEAT_SCHEDULE

PIP = 0.0001
# 24 one-minute closes drifting down half a pip a minute, then a 30-pip jump: the 5-minute average crosses the 20.
FALLING_THEN_JUMP = [1.0960 - i * PIP / 2 for i in range(24)] + [1.0960 - 23 * PIP / 2 + 30 * PIP]


def test_a_cross_of_the_fast_average_above_the_slow_one_is_a_buy_and_below_a_sell():
    assert crossover(FALLING_THEN_JUMP) == "BUY"
    assert crossover([-x for x in FALLING_THEN_JUMP]) == "SELL"
    assert crossover(FALLING_THEN_JUMP[:-1]) is None, "still below: no cross"
    assert crossover(FALLING_THEN_JUMP[-10:]) is None, "too few bars"


def test_minute_closes_take_each_minutes_last_mid_and_fill_quiet_minutes():
    now = timezone.now().replace(second=30)
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
    points = [(start, Decimal("1.1")), (start + timedelta(seconds=50), Decimal("1.2")),
              (start + timedelta(minutes=2), Decimal("1.3")), (now, Decimal("9"))]  # fmt: skip
    assert minute_closes(points, now=now) == [1.2, 1.2, 1.3], "the current minute is not complete"


@pytest.fixture
def crossing_market(committed):
    """Reference mids that cross up on the last complete minute before the returned `now`."""
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    for index, mid in enumerate(FALLING_THEN_JUMP):
        at = minute - timedelta(minutes=len(FALLING_THEN_JUMP) - index) + timedelta(seconds=30)
        ReferenceQuote.objects.create(time=at, symbol="EURUSD", bid=Decimal(str(round(mid - PIP / 2, 6))),
                                      ask=Decimal(str(round(mid + PIP / 2, 6))), source="replay")  # fmt: skip
    return now


def quotes_now(account) -> None:
    """A fresh reference quote and broker quote, just before the run (signal intake wants both recent)."""
    ReferenceQuote.objects.create(time=timezone.now(), symbol="EURUSD", bid=Decimal("1.09784"),
                                  ask=Decimal("1.09786"), source="replay")  # fmt: skip
    cache_client().delete(reference_quote_key("EURUSD"))
    quote = {"bid": 1.0979, "ask": 1.0981, "spread": 20, "timestamp": timezone.now().isoformat()}
    cache_set_many([(quote_key(account.account_id, "EURUSD"), QUOTE_TTL_S, quote)])


def test_a_reference_strategy_signal_carries_the_active_models_version_and_confidence(
    account, crossing_market, settings, tmp_path
):
    settings.FEEDBACK_EXPORT_DIR = tmp_path
    settings.REFERENCE_STRATEGY_ENABLED, settings.REFERENCE_SYMBOLS = True, ["EURUSD"]
    feedback_generate(account, count=120, seed=21, now=timezone.now())
    version = model_retrain()
    opted_in = make_account(account.tenant, account.user, strategy_parameters={"reference_strategy": True})
    quotes_now(opted_in)

    signals = reference_strategy_run(now=crossing_market)

    assert [(s.account_id, s.symbol, s.action) for s in signals] == [(opted_in.pk, "EURUSD", "BUY")]
    with operator_path():
        signal = TradingSignal.objects.get(signal_id=signals[0].signal_id)
    features = signal.metadata["features"]
    expected = model_confidence(symbol="EURUSD", action="BUY", features=features)
    assert (signal.source, signal.strategy_name, signal.model_version) == ("reference_model", STRATEGY_NAME,
                                                                           version.version)  # fmt: skip
    assert signal.confidence_score == Decimal(str(round(expected, 4)))
    assert 0 < features["confidence"] <= 1


def test_nothing_is_signalled_unless_enabled_and_opted_in(account, crossing_market, settings):
    settings.REFERENCE_SYMBOLS = ["EURUSD"]
    settings.REFERENCE_STRATEGY_ENABLED = False
    opted_in = make_account(account.tenant, account.user, strategy_parameters={"reference_strategy": True})
    quotes_now(account)
    quotes_now(opted_in)
    assert reference_strategy_run(now=crossing_market) == []
    settings.REFERENCE_STRATEGY_ENABLED = True
    signals = reference_strategy_run(now=crossing_market)
    assert [s.account_id for s in signals] == [opted_in.pk], "the account that did not opt in gets none"
    assert (signals[0].model_version, signals[0].confidence_score) == ("", None), "no model trained yet"
    assert BEAT_SCHEDULE["reference-strategy"]["task"] == "signals.learning_tasks.reference_strategy_task"
    assert isinstance(reference_strategy_task.apply().get(), int), "the scheduled task runs the strategy"
