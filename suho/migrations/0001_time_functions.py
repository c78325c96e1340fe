"""`time_bucket()` and `last()` on plain PostgreSQL, so the seed's SQL runs unchanged on both paths.

On TimescaleDB the extension provides both; nothing is created.
"""

from django.db import migrations

LAST_TYPES = ("numeric", "text", "timestamptz", "double precision", "bigint", "integer", "boolean", "uuid")


def _ident(type_name: str) -> str:
    return type_name.replace(" ", "_")


def create_functions(apps, schema_editor):
    from suho.timeseries import timescale_enabled

    if timescale_enabled(schema_editor.connection):
        return
    # Same origin as TimescaleDB's time_bucket for timestamptz: Monday 2000-01-03 00:00 UTC.
    schema_editor.execute(
        """
        CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') $$
        """
    )
    for type_name in LAST_TYPES:
        ident = _ident(type_name)
        schema_editor.execute(f"CREATE TYPE suho_last_{ident} AS (value {type_name}, at timestamptz)")
        schema_editor.execute(
            f"""
            CREATE FUNCTION suho_last_{ident}_step(state suho_last_{ident}, value {type_name}, at timestamptz)
            RETURNS suho_last_{ident} LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
                SELECT CASE WHEN at IS NULL THEN state
                            WHEN state IS NULL OR state.at IS NULL OR at >= state.at
                                THEN ROW(value, at)::suho_last_{ident}
                            ELSE state END
            $$
            """
        )
        schema_editor.execute(
            f"""
            CREATE FUNCTION suho_last_{ident}_final(state suho_last_{ident}) RETURNS {type_name}
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (state).value $$
            """
        )
        schema_editor.execute(
            f"""
            CREATE AGGREGATE last({type_name}, timestamptz) (
                SFUNC = suho_last_{ident}_step, STYPE = suho_last_{ident}, FINALFUNC = suho_last_{ident}_final
            )
            """
        )


def drop_functions(apps, schema_editor):
    from suho.timeseries import timescale_enabled

    if timescale_enabled(schema_editor.connection):
        return
    for type_name in LAST_TYPES:
        ident = _ident(type_name)
        schema_editor.execute(f"DROP AGGREGATE IF EXISTS last({type_name}, timestamptz)")
        schema_editor.execute(f"DROP TYPE IF EXISTS suho_last_{ident} CASCADE")
    schema_editor.execute("DROP FUNCTION IF EXISTS time_bucket(interval, timestamptz)")


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [migrations.RunPython(create_functions, drop_functions)]
