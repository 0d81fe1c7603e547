"""Named PostgreSQL advisory locks shared across apps.

Every operation that changes what a user can spend (orders, closes, margin moves, withdrawals,
liquidations, funding) takes the user's lock first, inside its transaction. That serialises one
user's money decisions (check available margin, then post) without blocking other users, and — being
the first lock taken — keeps the lock order fixed, so two such operations can never deadlock."""

from __future__ import annotations

from django.db import connection

USER_NAMESPACE = 0x5542  # "UB": user balance decisions


def user_lock(user_id: int) -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("user_lock must be taken inside a transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [USER_NAMESPACE, int(user_id)])
