"""The feedback export (seed §7.3): the closed-signal dataset as CSV with the seed's features; rows marked."""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
from django.db import connections
from django.utils import timezone
from feedback_factory import feedback_generate

from signals.learning import EXPORT_COLUMNS, feedback_dataset, feedback_export
from signals.learning_tasks import feedback_export_task
from signals.models import SignalExecution
from suho.routers import operator_path
from suho.schedules import BEAT_SCHEDULE
from suho.tenancy import tenant_context


def executions() -> dict:
    with operator_path():
        return {e.signal_id: e for e in SignalExecution.objects.all()}


def test_the_export_writes_the_closed_signals_with_the_seeds_features_and_marks_them(account, tmp_path):
    now = timezone.now()
    closed = feedback_generate(account, count=6, seed=1, now=now)
    still_open = feedback_generate(account, count=2, seed=2, now=now, closed=False)
    too_old = feedback_generate(account, count=1, seed=3, now=now, days_ago=8)

    path = feedback_export(now=now, directory=tmp_path)

    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == EXPORT_COLUMNS
        rows = list(reader)
    assert {"confidence", "polygon_ask", "deviation", "slippage", "latency", "volatility", "spread", "profit",
            "profit_pips", "trade_result"} <= set(EXPORT_COLUMNS)  # fmt: skip
    by_id = {row["signal_id"]: row for row in rows}
    assert set(by_id) == {str(s.signal_id) for s in closed}
    marked = executions()
    for signal in closed:
        row, execution = by_id[str(signal.signal_id)], marked[signal.signal_id]
        assert Decimal(row["confidence"]) == signal.confidence_score
        assert Decimal(row["profit"]) == execution.profit
        assert int(row["latency"]) == execution.execution_latency_ms
        assert Decimal(row["spread"]) == execution.spread_at_execution
        assert row["trade_result"] == (
            "WIN" if execution.profit > 0 else "LOSS" if execution.profit < 0 else "BREAKEVEN"
        )
        assert (execution.feedback_status, execution.exported_at) == ("included_in_training", now)
    for signal in [*still_open, *too_old]:
        assert (marked[signal.signal_id].feedback_status, marked[signal.signal_id].exported_at) == ("pending", None)


def test_the_parquet_file_reads_back_to_the_same_rows_as_the_csv_and_the_database(account, tmp_path):
    now = timezone.now()
    closed = feedback_generate(account, count=9, seed=7, now=now)
    path = feedback_export(now=now, directory=tmp_path)

    table = pq.read_table(path.with_suffix(".parquet"))
    assert tuple(table.column_names) == EXPORT_COLUMNS
    parquet_rows = table.to_pylist()
    with path.open(newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [row["signal_id"] for row in parquet_rows] == [row["signal_id"] for row in csv_rows]
    assert {row["signal_id"] for row in parquet_rows} == {str(s.signal_id) for s in closed}
    for parquet_row, csv_row in zip(parquet_rows, csv_rows, strict=True):
        for name in EXPORT_COLUMNS:
            value = parquet_row[name]
            assert ("" if value is None else str(value)) == csv_row[name], name
    with operator_path():
        database = {str(row["signal_id"]): row for row in feedback_dataset(status="included_in_training",
                                                                            since=now - timedelta(days=7))}  # fmt: skip
    for row in parquet_rows:
        assert {name: row[name] for name in EXPORT_COLUMNS if name != "signal_id"} == {
            name: database[row["signal_id"]][name] for name in EXPORT_COLUMNS if name != "signal_id"
        }


def test_a_second_export_finds_nothing_new_and_writes_only_the_header(account, tmp_path):
    now = timezone.now()
    feedback_generate(account, count=3, seed=4, now=now)
    feedback_export(now=now, directory=tmp_path)
    second = feedback_export(now=now + timedelta(seconds=1), directory=tmp_path)
    assert second.read_text().splitlines() == [",".join(EXPORT_COLUMNS)]
    first = f"feedback-{now:%Y%m%dT%H%M%S%fZ}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{first}.csv", f"{first}.parquet", second.name, second.with_suffix(".parquet").name]
    ), "no partial files left behind"
    assert pq.read_table(second.with_suffix(".parquet")).num_rows == 0


def test_rows_another_export_holds_are_skipped_not_written_twice(account, tmp_path):
    now = timezone.now()
    held, free = feedback_generate(account, count=2, seed=5, now=now)
    with tenant_context(account.tenant_id, using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute("SELECT 1 FROM mt5_signal_executions WHERE signal_id = %s FOR UPDATE", [held.signal_id])
        path = feedback_export(now=now, directory=tmp_path)

    with path.open(newline="") as handle:
        assert [row["signal_id"] for row in csv.DictReader(handle)] == [str(free.signal_id)]
    assert executions()[held.signal_id].feedback_status == "pending", "left for the next export"


def test_the_daily_export_task_writes_into_the_configured_directory(account, settings, tmp_path):
    settings.FEEDBACK_EXPORT_DIR = tmp_path
    feedback_generate(account, count=2, seed=6, now=timezone.now())
    path = Path(feedback_export_task.apply().get())
    assert path.parent == tmp_path
    assert len(path.read_text().splitlines()) == 3
    assert BEAT_SCHEDULE["feedback-export"]["task"] == "signals.learning_tasks.feedback_export_task"
