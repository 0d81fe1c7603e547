"""Database-level guards shared by migrations: the invariants PostgreSQL enforces for us."""

from __future__ import annotations

from django.db import migrations

_FUNCTION = """
CREATE OR REPLACE FUNCTION xbit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def append_only(table: str) -> migrations.RunSQL:
    """Refuse UPDATE and DELETE on ``table`` (TRUNCATE, used only by test teardown, stays possible)."""
    trigger = f"{table}_append_only"
    return migrations.RunSQL(
        sql=[
            _FUNCTION,
            f"DROP TRIGGER IF EXISTS {trigger} ON {table};",
            f"CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION xbit_refuse_change();",
        ],
        reverse_sql=[f"DROP TRIGGER IF EXISTS {trigger} ON {table};"],
    )
