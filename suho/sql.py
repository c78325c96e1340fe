"""Raw SQL reads for selectors: the seed's analytic queries run as written, through the role the router picks."""

from __future__ import annotations

from django.db import connections, router


def fetch_dicts(model, sql: str, params: dict | list | None = None) -> list[dict]:
    """Rows as dicts, read through `model`'s alias: the service role under the caller's tenant context, or the
    operator role inside `operator_path()` (every tenant's rows, for cross-tenant jobs)."""
    with connections[router.db_for_read(model)].cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
