"""Writing and verifying the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils import timezone

from core.audit.models import AuditEntry

GENESIS_HASH = "0" * 64
# Sent inside the transaction of every audited change, after its row is written (``entry=``). The core's
# switch history listens to it so a switch changed on any page, API or automatic path is recorded.
audit_recorded = Signal()
# Serialises writers of the chain: two concurrent actions must not both link to the same previous row.
_CHAIN_LOCK_KEY = 0x58424954_41554454  # "XBIT" "AUDT"


def _normalise(value: Any) -> Any:
    """Round-trip through JSON so the hash is computed over exactly what the database stores."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder)) if value is not None else None


def entry_hash(
    *,
    prev_hash: str,
    created_at: datetime,
    actor_id: int | None,
    actor_label: str,
    ip: str | None,
    action: str,
    object_type: str,
    object_id: str,
    before: Any,
    after: Any,
    reason: str,
) -> str:
    body = json.dumps(
        {
            "prev": prev_hash,
            "at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor_id,
            "label": actor_label,
            "ip": ip,
            "action": action,
            "type": object_type,
            "id": object_id,
            "before": before,
            "after": after,
            "reason": reason,
        },
        sort_keys=True,
        separators=(",", ":"),
        cls=DjangoJSONEncoder,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def audit_record(
    *,
    action: str,
    actor: Any = None,
    request: HttpRequest | None = None,
    object_type: str = "",
    object_id: object = "",
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> AuditEntry:
    """Append one entry. Call it inside the transaction that makes the change it describes, so the
    change and its audit row commit or roll back together (house style rule 3)."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    last = AuditEntry.objects.order_by("-id").values_list("hash", flat=True).first()
    prev_hash = last or GENESIS_HASH
    actor_obj = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    actor_label = getattr(actor_obj, "email", None) or (str(actor) if actor else "system")
    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    # microsecond precision survives the database round-trip, so the stored row re-hashes identically
    created_at = timezone.now()
    before_n, after_n = _normalise(before), _normalise(after)
    digest = entry_hash(
        prev_hash=prev_hash,
        created_at=created_at,
        actor_id=actor_obj.pk if actor_obj else None,
        actor_label=actor_label,
        ip=ip,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=before_n,
        after=after_n,
        reason=reason,
    )
    entry = AuditEntry.objects.create(
        created_at=created_at,
        actor=actor_obj,
        actor_label=actor_label,
        ip=ip,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=before_n,
        after=after_n,
        reason=reason,
        prev_hash=prev_hash,
        hash=digest,
    )
    audit_recorded.send(sender=AuditEntry, entry=entry)
    return entry


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_at: int | None
    problem: str

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def audit_chain_verify(*, batch: int = 5000) -> ChainReport:
    """Walk the chain in id order recomputing every hash. Reports the first row that does not match."""
    prev = GENESIS_HASH
    checked = 0
    last_id = 0
    with transaction.atomic():
        while True:
            rows = list(AuditEntry.objects.filter(id__gt=last_id).order_by("id")[:batch])
            if not rows:
                return ChainReport(checked, None, "")
            for row in rows:
                if row.prev_hash != prev:
                    return ChainReport(checked, row.id, "prev_hash does not link to the previous row")
                expected = entry_hash(
                    prev_hash=row.prev_hash,
                    created_at=row.created_at,
                    actor_id=row.actor_id,
                    actor_label=row.actor_label,
                    ip=row.ip,
                    action=row.action,
                    object_type=row.object_type,
                    object_id=row.object_id,
                    before=row.before,
                    after=row.after,
                    reason=row.reason,
                )
                if expected != row.hash:
                    return ChainReport(checked, row.id, "content does not match its hash")
                prev = row.hash
                checked += 1
                last_id = row.id
