"""Verifying the audit log's hash chains (docs/decisions/0004): recompute every row's hash in the database, in
`chain_seq` order, and name the first row where the chain breaks.

Runs on the operator path (it reads every tenant's chain). The first row of a chain is the anchor: retention may
have removed older rows, so its `prev_hash` is trusted; every later row must follow it exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import connections

from compliance.notify import operators_notify
from suho.routers import OPERATOR

log = logging.getLogger(__name__)

PLATFORM = "platform"  # the chain of rows without a tenant

AUDIT_SEQ_MISSING = "chain_seq is missing"
AUDIT_SEQ_GAP = "chain_seq {seq} follows {prev} (rows removed, duplicated or renumbered)"
AUDIT_PREV_HASH_MISMATCH = "prev_hash is not the previous row's row_hash"
AUDIT_ROW_HASH_MISMATCH = "row_hash does not match the row's content (the row was changed)"

CHAIN_CHECK = """
WITH chain AS (
    SELECT id, time, chain_seq, prev_hash, row_hash, suho_audit_hash(prev_hash, l) AS recomputed,
           lag(row_hash) OVER w AS prev_row_hash, lag(chain_seq) OVER w AS prev_seq, row_number() OVER w AS n
    FROM mt5_audit_log AS l
    WHERE tenant_id IS NOT DISTINCT FROM %(tenant)s::uuid
    WINDOW w AS (ORDER BY chain_seq NULLS FIRST, id)
)
SELECT id, time, chain_seq, prev_seq,
       CASE WHEN chain_seq IS NULL THEN 'seq_missing'
            WHEN n > 1 AND chain_seq IS DISTINCT FROM prev_seq + 1 THEN 'seq_gap'
            WHEN n > 1 AND prev_hash IS DISTINCT FROM prev_row_hash THEN 'prev_hash'
            WHEN row_hash IS DISTINCT FROM recomputed THEN 'row_hash'
       END AS problem,
       (SELECT count(*) FROM chain) AS total
FROM chain
WHERE chain_seq IS NULL
   OR (n > 1 AND (chain_seq IS DISTINCT FROM prev_seq + 1 OR prev_hash IS DISTINCT FROM prev_row_hash))
   OR row_hash IS DISTINCT FROM recomputed
ORDER BY n
LIMIT 1
"""


@dataclass(frozen=True)
class ChainBreak:
    row_id: int
    time: datetime
    chain_seq: int | None
    problem: str

    def __str__(self) -> str:
        return f"row id={self.row_id} time={self.time.isoformat()} chain_seq={self.chain_seq}: {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    chain: str  # a tenant id, or PLATFORM
    rows: int
    first_break: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


def audit_chains() -> list[str]:
    """Every chain present: tenant ids as text, and PLATFORM for rows without a tenant."""
    with connections[OPERATOR].cursor() as cursor:
        cursor.execute("SELECT DISTINCT coalesce(tenant_id::text, %s) FROM mt5_audit_log ORDER BY 1", [PLATFORM])
        return [row[0] for row in cursor.fetchall()]


def audit_chain_verify(*, chain: str | UUID, using: str = OPERATOR) -> ChainReport:
    """Check one chain (a tenant id or PLATFORM); the report names the first broken row, if any."""
    tenant = None if str(chain) == PLATFORM else str(UUID(str(chain)))
    with connections[using].cursor() as cursor:
        cursor.execute(CHAIN_CHECK, {"tenant": tenant})
        found = cursor.fetchone()
        if found is None:
            cursor.execute("SELECT count(*) FROM mt5_audit_log WHERE tenant_id IS NOT DISTINCT FROM %s::uuid", [tenant])
            return ChainReport(str(chain), cursor.fetchone()[0], None)
    row_id, time, seq, prev_seq, problem, total = found
    message = {
        "seq_missing": AUDIT_SEQ_MISSING,
        "seq_gap": AUDIT_SEQ_GAP.format(seq=seq, prev=prev_seq),
        "prev_hash": AUDIT_PREV_HASH_MISMATCH,
        "row_hash": AUDIT_ROW_HASH_MISMATCH,
    }[problem]
    return ChainReport(str(chain), total, ChainBreak(row_id, time, seq, message))


def audit_verify(*, tenant: str | UUID | None = None, using: str = OPERATOR) -> list[ChainReport]:
    """Every chain (or only `tenant`'s: an id or PLATFORM)."""
    chains = [str(tenant)] if tenant is not None else audit_chains()
    return [audit_chain_verify(chain=chain, using=using) for chain in chains]


def audit_verify_alert() -> int:
    """Daily (Celery beat): verify every chain; each broken one is logged as an error and sent to operators.
    Returns the number of broken chains."""
    broken = [report for report in audit_verify() if not report.ok]
    for report in broken:
        log.error("audit chain %s broken at %s", report.chain, report.first_break, extra={"task": "verify_audit"})
        operators_notify(
            subject=f"[Suho audit] chain {report.chain} broken",
            payload={"chain": report.chain, "rows": report.rows, "row_id": report.first_break.row_id,
                     "time": report.first_break.time.isoformat(), "chain_seq": report.first_break.chain_seq,
                     "problem": report.first_break.problem},
            context={"task": "verify_audit"},
        )  # fmt: skip
    return len(broken)
