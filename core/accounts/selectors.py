"""Reads for accounts."""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from core.accounts.kyc import KycLimits, kyc_limits_get
from core.accounts.models import SecurityEvent, User


def request_user(request: Any) -> User:
    """The authenticated trader of a DRF request (views run behind IsAuthenticated)."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionError("an authenticated user is required")
    return user


def security_events_for(user_id: int) -> QuerySet[SecurityEvent]:
    """A user's security events, newest first: what the trader sees under account security and what
    support reads in the console (logins, failures, lockouts, password / 2FA / email / wallet
    changes, API keys, sessions, withdrawal addresses)."""
    return SecurityEvent.objects.filter(user_id=user_id).order_by("-created_at", "-id")


def kyc_limits_for(user: User) -> KycLimits:
    """The limits that apply to ``user`` now (by KYC status): ``daily_withdrawal_limit`` and
    ``max_order_notional``, Decimal USD. Cached for a minute; one Redis read per call."""
    return kyc_limits_get(user.kyc_status)


@functools.cache
def _active_user_select() -> tuple[str, list[str]] | None:
    """One SELECT of every column, or None when a field needs a converter the ORM would apply."""
    fields = User._meta.concrete_fields
    if any(
        f.get_db_converters(connection) or connection.ops.get_db_converters(f.get_col(User._meta.db_table))
        for f in fields
    ):
        return None
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    sql = f"SELECT {columns} FROM {User._meta.db_table} WHERE id = %s AND is_active"  # noqa: S608 - our columns
    return sql, [f.attname for f in fields]


def active_user(user_id: int) -> User | None:
    """The active user with this id, as authentication reads it when its copy will not do
    (``core.accounts.user_cache``): one statement built once (the ORM's query compilation cost more than
    the round trip), the row loaded as the ORM would."""
    select = _active_user_select()
    if select is None:
        return User.objects.filter(pk=user_id, is_active=True).first()
    sql, names = select
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        row = cursor.fetchone()
    return User.from_db(connection.alias, names, row) if row is not None else None
