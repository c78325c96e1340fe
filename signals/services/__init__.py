"""Writes for signals, one module per concept: intake (validation, broker adjustment, risk gate), lifecycle,
credentials. Import from here."""

from signals.services.credentials import (
    ml_engine_key_create,
    ml_engine_key_revoke,
    ml_engine_key_verify,
    tradingview_webhook_create,
    tradingview_webhook_resolve,
    tradingview_webhook_revoke,
)
from signals.services.intake import BROADCAST, SignalInvalid, SignalSpec, Submission, signal_create, signal_submit
from signals.services.lifecycle import (
    SignalTransitionError,
    signal_cancel,
    signal_check_transition,
    signal_transition,
    signals_expire_stale,
)

__all__ = [
    "BROADCAST",
    "SignalInvalid",
    "SignalSpec",
    "SignalTransitionError",
    "Submission",
    "ml_engine_key_create",
    "ml_engine_key_revoke",
    "ml_engine_key_verify",
    "signal_cancel",
    "signal_check_transition",
    "signal_create",
    "signal_submit",
    "signal_transition",
    "signals_expire_stale",
    "tradingview_webhook_create",
    "tradingview_webhook_resolve",
    "tradingview_webhook_revoke",
]
