"""The tick table carries no foreign-key constraints (each was a deferred per-row check at commit, a third of the
tick insert's cost); the other time series keep theirs."""

from __future__ import annotations

import pytest
from django.db import connections

pytestmark = pytest.mark.django_db(databases=["default", "owner"])

FOREIGN_KEYS = """
SELECT conrelid::regclass::text, count(*) FROM pg_constraint
WHERE contype = 'f' AND conrelid IN ('mt5_broker_quotes'::regclass, 'mt5_account_balance_history'::regclass)
GROUP BY 1
"""


def test_ticks_have_no_database_foreign_keys_and_balances_keep_theirs():
    with connections["owner"].cursor() as cursor:
        cursor.execute(FOREIGN_KEYS)
        counts = dict(cursor.fetchall())
    assert "mt5_broker_quotes" not in counts
    assert counts["mt5_account_balance_history"] == 2  # tenant and account
