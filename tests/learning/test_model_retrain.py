"""Retraining on a generated feedback set stores a new active model version; its calibrated confidence is served."""

from __future__ import annotations

import pickle
from datetime import timedelta

import numpy as np
import pytest
from django.db import connections
from django.utils import timezone
from feedback_factory import feedback_generate

from signals.learning import (
    FEATURES,
    MODEL_ARTIFACT_INVALID,
    MODEL_TOO_FEW_SAMPLES,
    ModelArtifactInvalid,
    ModelRetrainError,
    feature_vector,
    model_confidence,
    model_prediction,
    model_retrain,
)
from signals.learning_tasks import model_retrain_task
from signals.models import ModelVersion, SignalExecution
from suho.routers import operator_path
from suho.schedules import BEAT_SCHEDULE

HIGH = {"confidence": 0.95, "slippage_pips": -0.5, "spread": 12, "volatility": 0.0004, "latency": 90}
LOW = {**HIGH, "confidence": 0.05, "slippage_pips": 2.5}


def test_the_retrain_task_trains_on_the_feedback_and_stores_a_new_active_version_with_metrics(
    account, settings, tmp_path
):
    settings.FEEDBACK_EXPORT_DIR = tmp_path
    feedback_generate(account, count=150, seed=11, now=timezone.now())

    result = model_retrain_task.apply().get()

    version = ModelVersion.objects.get(is_active=True)
    assert result == {"version": version.version, "samples": 150, "metrics": version.metrics}
    assert (version.samples, version.features) == (150, list(FEATURES))
    assert set(version.metrics) >= {"samples", "wins", "win_rate", "brier", "log_loss", "roc_auc", "accuracy"}
    assert version.metrics["roc_auc"] > 0.6, "the generated outcome depends on confidence and slippage"
    assert version.metrics["brier"] < 0.25, "better than a coin"
    with operator_path():
        assert set(SignalExecution.objects.values_list("feedback_status", flat=True)) == {"included_in_training"}
    assert BEAT_SCHEDULE["model-retrain"]["task"] == "signals.learning_tasks.model_retrain_task"


def test_a_second_retrain_replaces_the_active_version_and_keeps_the_old_one(account, settings, tmp_path):
    settings.FEEDBACK_EXPORT_DIR = tmp_path
    now = timezone.now()
    feedback_generate(account, count=60, seed=12, now=now)
    first = model_retrain(now=now)
    feedback_generate(account, count=60, seed=13, now=now)
    second = model_retrain(now=now + timedelta(minutes=1))

    assert list(ModelVersion.objects.order_by("id").values_list("version", "is_active", "samples")) == [
        (first.version, False, 60),
        (second.version, True, 120),
    ]


def test_model_confidence_is_the_new_models_calibrated_probability_of_a_win(account, settings, tmp_path):
    settings.FEEDBACK_EXPORT_DIR = tmp_path
    assert model_confidence(symbol="EURUSD", action="BUY", features=HIGH) is None, "no model yet"
    feedback_generate(account, count=150, seed=14, now=timezone.now())
    version = model_retrain()

    high = model_confidence(symbol="EURUSD", action="BUY", features=HIGH)
    low = model_confidence(symbol="EURUSD", action="BUY", features=LOW)

    independent = pickle.loads(bytes(version.artifact))  # noqa: S301 — written by this test's own retrain
    expected = independent.predict_proba(np.array([feature_vector(action="BUY", features=HIGH)]))[0, 1]
    assert high == pytest.approx(float(expected))
    assert 0 < low < 0.5 < high < 1
    assert model_prediction(symbol="EURUSD", action="BUY", features={}).version == version.version, (
        "no features at all: every one imputed"
    )


def test_too_little_feedback_leaves_the_active_model_in_place(account, settings, tmp_path):
    settings.FEEDBACK_EXPORT_DIR = tmp_path
    feedback_generate(account, count=5, seed=15, now=timezone.now())
    with pytest.raises(ModelRetrainError) as refused:
        model_retrain()
    assert str(refused.value).startswith(MODEL_TOO_FEW_SAMPLES.split("{")[0])
    assert not ModelVersion.objects.exists()
    assert "skipped" in model_retrain_task.apply().get()


def test_an_artifact_not_written_by_the_system_is_never_unpickled(account, settings, tmp_path):
    settings.FEEDBACK_EXPORT_DIR = tmp_path
    feedback_generate(account, count=60, seed=16, now=timezone.now())
    version = model_retrain()
    with connections["owner"].cursor() as cursor:
        cursor.execute("UPDATE suho_model_versions SET artifact = %s WHERE id = %s",
                       [pickle.dumps({"not": "a model"}), version.id])  # fmt: skip

    with pytest.raises(ModelArtifactInvalid, match=MODEL_ARTIFACT_INVALID.format(version=version.version)):
        model_confidence(symbol="EURUSD", action="SELL", features=HIGH)


def test_the_service_role_reads_model_versions_but_cannot_write_them(account):
    from django.db import ProgrammingError, transaction

    with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
        ModelVersion.objects.create(version="planted", trained_at=timezone.now(), samples=1, artifact=b"x",
                                    artifact_digest="0" * 64, is_active=True)  # fmt: skip
    assert ModelVersion.objects.count() == 0, "read through the service role"
