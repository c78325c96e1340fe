"""The learning loop (seed §7.3, §2.3 step 8): feedback export, the reference model, its versions and confidence.

- `feedback_export` writes the closed-signal dataset as CSV and Parquet and marks those executions
  `included_in_training` (a mark, not a removal: the ML engine still reads them at `/api/signals/feedback/`).
- `model_retrain` exports, then trains a calibrated logistic regression (P(WIN)) on every included execution of the
  last 30 days and stores it as the one active `ModelVersion`.
- `model_confidence` / `model_prediction` score a new signal with the active model (None when there is none).

Features: what is known when a signal is created (producer confidence, broker deviation, spread, volatility, side)
plus what only execution tells (slippage, latency); at prediction time a missing feature is imputed with the
training median, so the model also scores signals that have not met a broker yet.
"""

from __future__ import annotations

import csv
import logging
import math
import pickle
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from signals.models import ModelVersion, SignalExecution
from suho.routers import OPERATOR, operator_path
from suho.sql import fetch_dicts

log = logging.getLogger(__name__)

EXPORT_DAYS = 7  # seed §7.3's window
TRAINING_DAYS = 30  # seed §7.3's pipeline: query_signal_executions(days=30)
MIN_TRAINING_SAMPLES = 20
MIN_CLASS_SAMPLES = 5  # 3-fold metrics around 3-fold calibration: each inner fit needs 3 of each outcome
ARTIFACT_SALT = "suho.signals.learning.artifact"

EXPORT_COLUMNS = (
    "signal_id", "signal_time", "symbol", "action", "model_version", "strategy_name",
    "confidence", "polygon_ask", "deviation", "deviation_pips", "slippage", "slippage_pips", "latency",
    "volatility", "spread", "profit", "profit_pips", "trade_result",
)  # fmt: skip
# The Parquet file's types: exact decimals with the columns' scales, so it reads back to the database's values.
PARQUET_TYPES = {
    "signal_id": "string", "signal_time": "timestamp", "symbol": "string", "action": "string",
    "model_version": "string", "strategy_name": "string", "confidence": (5, 4), "polygon_ask": (20, 8),
    "deviation": (20, 8), "deviation_pips": (12, 2), "slippage": (20, 8), "slippage_pips": (12, 2),
    "latency": "int32", "volatility": (12, 6), "spread": (10, 2), "profit": (20, 2), "profit_pips": (12, 2),
    "trade_result": "string",
}  # fmt: skip
FEATURES = ("confidence", "deviation_pips", "spread", "volatility", "slippage_pips", "latency", "is_buy")

MODEL_TOO_FEW_SAMPLES = (
    "not enough feedback to train: {samples} closed signals ({wins} wins, {losses} other) in {days} days; "
    f"need {MIN_TRAINING_SAMPLES} and {MIN_CLASS_SAMPLES} of each outcome"
)
MODEL_ARTIFACT_INVALID = "model {version}: the artifact's digest does not match; refusing to load it"

# Seed §7.3 with the columns the export and the model need (symbol, side, deviation, pips), by status and window.
FEEDBACK_DATASET = """
SELECT
    s.signal_id, s.time AS signal_time, s.symbol, s.action, s.model_version, s.strategy_name,
    s.confidence_score AS confidence, s.polygon_ask, s.price_deviation AS deviation, s.deviation_pips,
    e.price_difference AS slippage, e.slippage_pips, e.execution_latency_ms AS latency,
    e.market_volatility AS volatility, e.spread_at_execution AS spread,
    e.profit, e.profit_pips,
    CASE WHEN e.profit > 0 THEN 'WIN' WHEN e.profit < 0 THEN 'LOSS' ELSE 'BREAKEVEN' END AS trade_result,
    e.execution_id
FROM mt5_trading_signals s
JOIN mt5_signal_executions e ON s.signal_id = e.signal_id
WHERE e.trade_closed = true
  AND e.feedback_status = %(status)s
  AND s.time >= %(since)s
ORDER BY s.time, s.signal_id
"""
# An export claims its rows: a second export running at the same time skips them instead of writing them twice.
CLAIM = " FOR UPDATE OF e SKIP LOCKED"


class ModelRetrainError(Exception):
    """Retraining did not happen (too little feedback); the active model stays."""


class ModelArtifactInvalid(Exception):
    """A stored artifact failed its HMAC check: it was not written by this system and is never unpickled."""


class Prediction(NamedTuple):
    version: str
    confidence: float


def feedback_dataset(*, status: str, since: datetime, claim: bool = False) -> list[dict]:
    """Closed signals with their execution, every tenant (operator path), oldest first. `claim` locks the
    executions read (skipping ones another transaction holds): only inside the caller's transaction."""
    with operator_path():
        sql = FEEDBACK_DATASET.rstrip().removesuffix(";") + (CLAIM if claim else "")
        return fetch_dicts(SignalExecution, sql, {"status": status, "since": since})


def parquet_schema():
    import pyarrow as pa

    kinds = {"string": pa.string(), "int32": pa.int32(), "timestamp": pa.timestamp("us", tz="UTC")}
    return pa.schema([
        (name, pa.decimal128(*kind) if isinstance(kind, tuple) else kinds[kind]) for name, kind in PARQUET_TYPES.items()
    ])  # fmt: skip


def feedback_parquet_write(*, rows: list[dict], path: Path) -> None:
    """EXPORT_COLUMNS of `rows` as one Parquet file (PARQUET_TYPES; an empty file still has the schema)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {name: [row[name] for row in rows] for name in EXPORT_COLUMNS}
    columns["signal_id"] = [str(value) for value in columns["signal_id"]]
    pq.write_table(pa.table(columns, schema=parquet_schema()), path)


def feedback_export(*, now: datetime | None = None, directory: Path | None = None, days: int = EXPORT_DAYS) -> Path:
    """Write the not-yet-exported closed signals of the last `days` to `feedback-<UTC time>.csv` and `.parquet` in
    `directory` (FEEDBACK_EXPORT_DIR) and mark them `included_in_training` with `exported_at`; one transaction, so
    a failed write marks nothing. The files always have the header (schema), even with no rows. Returns the CSV's
    path; the Parquet file is beside it with the same stem."""
    now = now or timezone.now()
    directory = Path(directory or settings.FEEDBACK_EXPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"feedback-{now:%Y%m%dT%H%M%S%fZ}.csv"
    with operator_path(), transaction.atomic(using=OPERATOR):
        rows = feedback_dataset(
            status=SignalExecution.FeedbackStatus.PENDING, since=now - timedelta(days=days), claim=True
        )
        partial = path.with_suffix(".partial")
        with partial.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        partial_parquet = path.with_suffix(".parquet.partial")
        feedback_parquet_write(rows=rows, path=partial_parquet)
        SignalExecution.objects.filter(
            execution_id__in=[row["execution_id"] for row in rows],
            feedback_status=SignalExecution.FeedbackStatus.PENDING,
        ).update(feedback_status=SignalExecution.FeedbackStatus.INCLUDED, exported_at=now)
        partial_parquet.rename(path.with_suffix(".parquet"))
        partial.rename(path)
    log.info("feedback export: %d rows to %s", len(rows), path)
    return path


def feature_vector(*, action: str, features: dict) -> list[float]:
    """FEATURES in order; a missing or unknown value is NaN (imputed by the model with the training median)."""
    values = {**features, "is_buy": 1.0 if str(action).upper() == "BUY" else 0.0}
    vector = []
    for name in FEATURES:
        value = values.get(name)
        try:
            vector.append(float(value) if value is not None else math.nan)
        except (TypeError, ValueError):
            vector.append(math.nan)
    return vector


def _estimator():
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    base = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                         LogisticRegression(max_iter=1000))  # fmt: skip
    return CalibratedClassifierCV(base, method="sigmoid", cv=3)


def model_train(*, rows: list[dict]):
    """Fit the calibrated model on dataset rows; returns (model, metrics). Metrics come from 3-fold out-of-fold
    predictions, so they describe data the scoring model did not see."""
    import numpy as np
    import sklearn
    from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = np.array([feature_vector(action=row["action"], features=row) for row in rows], dtype=float)
    y = np.array([1 if row["trade_result"] == "WIN" else 0 for row in rows])
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    out_of_fold = cross_val_predict(_estimator(), x, y, cv=folds, method="predict_proba")[:, 1]
    metrics = {
        "samples": len(rows),
        "wins": int(y.sum()),
        "win_rate": round(float(y.mean()), 6),
        "brier": round(float(brier_score_loss(y, out_of_fold)), 6),
        "log_loss": round(float(log_loss(y, out_of_fold, labels=[0, 1])), 6),
        "roc_auc": round(float(roc_auc_score(y, out_of_fold)), 6),
        "accuracy": round(float(accuracy_score(y, out_of_fold >= 0.5)), 6),
        "sklearn": sklearn.__version__,
    }
    return _estimator().fit(x, y), metrics


def artifact_digest(artifact: bytes) -> str:
    return salted_hmac(ARTIFACT_SALT, artifact, algorithm="sha256").hexdigest()


def model_retrain(*, now: datetime | None = None, days: int = TRAINING_DAYS) -> ModelVersion:
    """Export new feedback, train on every included closed signal of the last `days` (all tenants) and store the
    result as the one active version. Raises ModelRetrainError with too little feedback (nothing changes)."""
    now = now or timezone.now()
    feedback_export(now=now)
    rows = feedback_dataset(status=SignalExecution.FeedbackStatus.INCLUDED, since=now - timedelta(days=days))
    wins = sum(1 for row in rows if row["trade_result"] == "WIN")
    if len(rows) < MIN_TRAINING_SAMPLES or min(wins, len(rows) - wins) < MIN_CLASS_SAMPLES:
        raise ModelRetrainError(MODEL_TOO_FEW_SAMPLES.format(samples=len(rows), wins=wins, losses=len(rows) - wins,
                                                             days=days))  # fmt: skip
    model, metrics = model_train(rows=rows)
    artifact = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    with operator_path(), transaction.atomic(using=OPERATOR):
        ModelVersion.objects.select_for_update().filter(is_active=True).update(is_active=False)
        version = ModelVersion.objects.create(
            version=f"ref-lr-{now:%Y%m%d%H%M%S}-{len(rows)}", trained_at=now, samples=len(rows),
            features=list(FEATURES), metrics=metrics, artifact=artifact, artifact_digest=artifact_digest(artifact),
            is_active=True,
        )  # fmt: skip
    log.info("model %s trained on %d samples: %s", version.version, len(rows), metrics)
    return version


# --- scoring: the active model, loaded once per version per process ------------------------------------------

_loaded: dict[int, tuple[str, object]] = {}
_loaded_lock = threading.Lock()


def model_load(*, version: ModelVersion):
    """Unpickle a stored model after checking its HMAC; raises ModelArtifactInvalid."""
    artifact = bytes(version.artifact)
    if not constant_time_compare(artifact_digest(artifact), version.artifact_digest):
        raise ModelArtifactInvalid(MODEL_ARTIFACT_INVALID.format(version=version.version))
    return pickle.loads(artifact)  # noqa: S301 — verified above: written by this system


def model_prediction(*, symbol: str, action: str, features: dict) -> Prediction | None:
    """The active model's calibrated P(WIN) for a signal, with the model's version; None without an active model.

    `features` may hold any of FEATURES (others are ignored, missing ones imputed). `symbol` is accepted for
    per-symbol models later; the reference model is one model for every symbol.
    """
    active = ModelVersion.objects.filter(is_active=True).values_list("id", "version").first()
    if active is None:
        return None
    model_id, version_name = active
    with _loaded_lock:
        cached = _loaded.get(model_id)
    if cached is None:
        model = model_load(version=ModelVersion.objects.get(id=model_id))
        with _loaded_lock:
            _loaded.clear()  # one model in memory: the active one
            _loaded[model_id] = cached = (version_name, model)
    import numpy as np

    probability = cached[1].predict_proba(np.array([feature_vector(action=action, features=features)]))[0, 1]
    return Prediction(cached[0], float(probability))


def model_confidence(*, symbol: str, action: str, features: dict) -> float | None:
    """The active model's calibrated confidence (0–1) for a new signal, or None when no model is trained yet."""
    prediction = model_prediction(symbol=symbol, action=action, features=features)
    return None if prediction is None else prediction.confidence
