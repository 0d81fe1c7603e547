"""Database-level guards shared by migrations: the invariants PostgreSQL enforces for us."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

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


def unique_as_constraint(
    app_label: str, model_name: str, field_name: str, field: models.Field[Any, Any], constraint_name: str
) -> migrations.SeparateDatabaseAndState:
    """A text field's ``unique=True`` turned into ``UniqueConstraint(constraint_name)`` without rebuilding
    anything: the unique index the column already has is renamed, and the pattern-matching
    (``varchar_pattern_ops``) copy Django adds beside it for ``unique=True`` is dropped. Making Django
    do it would drop the unique index and build a new one, blocking writes to the table for as long as
    the build takes. ``field``: the field as it becomes (no ``unique``)."""

    def names(schema_editor: Any, table: str, column: str) -> tuple[list[str], list[str]]:
        with schema_editor.connection.cursor() as cursor:
            found = schema_editor.connection.introspection.get_constraints(cursor, table)
        unique = [
            n for n, c in found.items() if c["unique"] and not c["primary_key"] and c["columns"] == [column]
        ]
        like = [
            n
            for n, c in found.items()
            if c["index"] and not c["unique"] and c["columns"] == [column] and n.endswith("_like")
        ]
        return unique, like

    def forward(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model(app_label, model_name)
        table, column = model._meta.db_table, model._meta.get_field(field_name).column
        unique, like = names(schema_editor, table, column)
        quote = schema_editor.quote_name
        if constraint_name not in unique:
            (current,) = unique  # the one unique index ``unique=True`` made
            schema_editor.execute(
                f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(current)} TO {quote(constraint_name)}"
            )
        for name in like:
            schema_editor.execute(f"DROP INDEX {quote(name)}")

    def backward(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model(app_label, model_name)
        table, column = model._meta.db_table, model._meta.get_field(field_name).column
        quote = schema_editor.quote_name
        schema_editor.execute(
            f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(constraint_name)} TO {quote(f'{table}_{column}_key')}"
        )
        schema_editor.execute(
            f"CREATE INDEX {quote(f'{table}_{column}_like')} ON {quote(table)} ({quote(column)} varchar_pattern_ops)"
        )

    return migrations.SeparateDatabaseAndState(
        state_operations=[
            migrations.AlterField(model_name=model_name, name=field_name, field=field),
            migrations.AddConstraint(
                model_name=model_name,
                constraint=models.UniqueConstraint(fields=[field_name], name=constraint_name),
            ),
        ],
        database_operations=[migrations.RunPython(forward, backward)],
    )
