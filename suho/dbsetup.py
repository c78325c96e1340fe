"""Creates the database, its three roles and their grants, as an administrator (ARCHITECTURE §5).

- owner (`DB_OWNER_USER`): owns the schema and every table; runs migrations and partition upkeep.
- service (`DB_SERVICE_USER`): what the app runs as; owns nothing, NOBYPASSRLS, only DML on tables.
- operator (`DB_OPERATOR_USER`): BYPASSRLS, the explicit cross-tenant path (admin, cross-tenant jobs).

Idempotent: run on every `make run` / test session. Needs a superuser (BYPASSRLS and extensions require it).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

TIMESCALE_INTERNAL_SCHEMAS = ("_timescaledb_internal", "_timescaledb_catalog", "_timescaledb_cache",
                              "_timescaledb_config", "_timescaledb_functions", "_timescaledb_debug")  # fmt: skip


def _connect(admin_url: str, database: str) -> psycopg.Connection:
    parts = urlsplit(admin_url)
    url = urlunsplit((parts.scheme.replace("timescale", "postgres"), parts.netloc, f"/{database}", parts.query, ""))
    return psycopg.connect(url, autocommit=True)


def _ensure_role(cur, name: str, attributes: str, password: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
    verb = "ALTER" if cur.fetchone() else "CREATE"
    cur.execute(sql.SQL(f"{verb} ROLE {{}} {attributes}").format(sql.Identifier(name)))
    if password:
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))


def database_setup(
    *, admin_url: str, database: str, owner: str, service: str, operator: str,
    passwords: dict[str, str], timescale: str = "auto", drop_first: bool = False,
) -> bool:  # fmt: skip
    """Make `database` ready for migrations; return whether TimescaleDB is installed in it.

    `timescale`: "auto" installs the extension when the server has it, "off" never does, "on" requires it.
    """
    with _connect(admin_url, "postgres") as conn, conn.cursor() as cur:
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
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        timescale_available = cur.fetchone() is not None

    if timescale == "on" and not timescale_available:
        raise RuntimeError("SUHO_TIMESCALEDB=on but the server has no timescaledb extension")
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
        if timescale_available and timescale != "off":
            cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            # Chunks do not carry the hypertable's policies: nobody but the owner may name them directly.
            for schema in TIMESCALE_INTERNAL_SCHEMAS:
                cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
                if cur.fetchone():
                    cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA _timescaledb_internal TO {}").format(ids[owner]))
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        return cur.fetchone() is not None


def database_drop(*, admin_url: str, database: str) -> None:
    with _connect(admin_url, "postgres") as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
