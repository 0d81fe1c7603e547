"""The audit log is append-only and hash-chained; the verifier finds an edit made behind its back."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from core.audit.models import AuditEntry
from core.audit.services import GENESIS_HASH, audit_chain_verify, audit_record

pytestmark = pytest.mark.django_db


def _write(n: int, actor: Any = None) -> None:
    for i in range(n):
        with transaction.atomic():
            audit_record(
                action="routing.mode_switch",
                actor=actor,
                object_type="asset",
                object_id="BTC",
                before={"mode": "NORMAL_MODE", "i": i},
                after={"mode": "HL_MODE"},
                reason="test",
            )


def _behind_the_back(sql: str, row_id: int) -> None:
    """Run SQL with triggers off (replica role): what a superuser could do directly in the database."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, [row_id])
        cursor.execute("SET session_replication_role = DEFAULT")


def test_entries_link_to_their_predecessor(make_staff: Any) -> None:
    _write(3, actor=make_staff(None))
    rows = list(AuditEntry.objects.order_by("id"))
    assert rows[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert audit_chain_verify().ok
    call_command("verify_audit_chain")


def test_the_database_refuses_update_and_delete() -> None:
    _write(1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.update(reason="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.all().delete()


def test_the_verifier_catches_an_edited_row() -> None:
    _write(4)
    target = AuditEntry.objects.order_by("id")[2]
    # an attacker with superuser rights bypasses the trigger and edits a row in place
    _behind_the_back("UPDATE audit_auditentry SET reason = 'nothing to see' WHERE id = %s", target.id)
    report = audit_chain_verify()
    assert not report.ok and report.broken_at == target.id and report.checked == 2
    with pytest.raises(CommandError, match=f"broken at entry {target.id}"):
        call_command("verify_audit_chain")


def test_the_verifier_catches_a_deleted_row() -> None:
    _write(3)
    middle = AuditEntry.objects.order_by("id")[1]
    _behind_the_back("DELETE FROM audit_auditentry WHERE id = %s", middle.id)
    report = audit_chain_verify()
    assert not report.ok and "link" in report.problem


@pytest.mark.django_db(transaction=True)
def test_audit_record_outside_a_transaction_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError):
        audit_record(action="x")
