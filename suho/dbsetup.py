"""Creates the database, its three roles and their grants, as an administrator (ARCHITECTURE §5).

- owner (`DB_OWNER_USER`): owns the schema and every table; runs migrations and partition upkeep.
- service (`DB_SERVICE_USER`): what the app runs as; owns nothing, NOBYPASSRLS, only DML on tables.
- operator (`DB_OPERATOR_USER`): BYPASSRLS, the explicit cross-tenant path (admin, cross-tenant jobs).

Idempotent: run on every `make run` / test session. Needs a superuser (BYPASSRLS and extensions require it).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

TIMESCALEDB_MISSING = "SUHO_TIMESCALEDB=on but the server has no timescaledb extension"
TIMESCALEDB_NOT_PRELOADED = (
    "SUHO_TIMESCALEDB=on but timescaledb is not in the server's shared_preload_libraries"
    " (add it there and restart PostgreSQL, or set SUHO_TIMESCALEDB=auto/off for the plain path)"
)
TIMESCALEDB_AUTO_PLAIN = (
    "timescaledb is installed on the server but not in shared_preload_libraries: using plain PostgreSQL"
    " (native partitioning)"
)


def database_url(admin_url: str, database: str) -> str:
    """admin_url pointed at another database of the same server (a timescale:// URL as libpq's postgres://)."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme.replace("timescale", "postgres"), parts.netloc, f"/{database}", parts.query, ""))


def _connect(admin_url: str, database: str) -> psycopg.Connection:
    return psycopg.connect(database_url(admin_url, database), autocommit=True)


def _ensure_role(cur, name: str, attributes: str, password: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
    verb = "ALTER" if cur.fetchone() else "CREATE"
    cur.execute(sql.SQL(f"{verb} ROLE {{}} {attributes}").format(sql.Identifier(name)))
    if password:
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))


def _timescale_usable(cur, *, required: bool) -> bool:
    """Whether TimescaleDB can be installed: packaged on the server *and* preloaded (else CREATE EXTENSION fails).

    Not usable: `required` raises with the reason; otherwise the plain path is taken, with a notice when only the
    preloading is missing (the operator may have meant TimescaleDB).
    """
    cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    if cur.fetchone() is None:
        if required:
            raise RuntimeError(TIMESCALEDB_MISSING)
        return False
    cur.execute("SELECT current_setting('shared_preload_libraries')")
    preloaded = {name.strip().strip('"') for name in cur.fetchone()[0].split(",")}
    if "timescaledb" in preloaded:
        return True
    if required:
        raise RuntimeError(TIMESCALEDB_NOT_PRELOADED)
    log.warning(TIMESCALEDB_AUTO_PLAIN)
    return False


def database_setup(
    *, admin_url: str, database: str, owner: str, service: str, operator: str,
    passwords: dict[str, str], timescale: str = "auto", drop_first: bool = False,
) -> bool:  # fmt: skip
    """Make `database` ready for migrations; return whether TimescaleDB is installed in it.

    `timescale`: "auto" installs the extension when the server has it preloaded, "off" never does, "on" requires it
    (RuntimeError naming what is missing).
    """
    with _connect(admin_url, "postgres") as conn, conn.cursor() as cur:
        use_timescale = timescale != "off" and _timescale_usable(cur, required=timescale == "on")  # before changes
        _ensure_role(cur, owner, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS", passwords.get(owner, ""))
        _ensure_role(cur, service, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT",
                     passwords.get(service, ""))  # fmt: skip
        _ensure_role(cur, operator, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS NOINHERIT",
                     passwords.get(operator, ""))  # fmt: skip
        if drop_first:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if not cur.fetchone():
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner)))
        cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(owner)))
    ids = {name: sql.Identifier(name) for name in (database, owner, service, operator)}
    with _connect(admin_url, database) as conn, conn.cursor() as cur:
        statements = [
            "REVOKE ALL ON DATABASE {db} FROM PUBLIC",
            "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {owner}, {service}, {operator}",
            "ALTER SCHEMA public OWNER TO {owner}",
            "REVOKE ALL ON SCHEMA public FROM PUBLIC",
            "GRANT USAGE ON SCHEMA public TO {service}, {operator}",
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public"
            " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {service}, {operator}",
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public"
            " GRANT USAGE, SELECT ON SEQUENCES TO {service}, {operator}",
        ]
        for statement in statements:
            cur.execute(
                sql.SQL(statement).format(
                    db=ids[database], owner=ids[owner], service=ids[service], operator=ids[operator]
                )
            )
        if use_timescale:
            # TimescaleDB's schemas keep their default USAGE for PUBLIC: every connection runs its GUC hooks in
            # _timescaledb_functions, and every query or insert through a hypertable resolves its chunks in
            # _timescaledb_internal. Chunks are closed by table privileges instead (suho.timeseries, decision 0014).
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        return cur.fetchone() is not None


def database_names(*, admin_url: str, prefix: str) -> list[str]:
    """The server's databases whose names start with prefix (the test set-up's leftovers from killed runs)."""
    with _connect(admin_url, "postgres") as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix])
        return [name for (name,) in cur.fetchall()]


def database_drop(*, admin_url: str, database: str) -> None:
    with _connect(admin_url, "postgres") as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
