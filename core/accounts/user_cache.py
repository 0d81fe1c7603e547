"""Process-local copies of user rows for bearer-token authentication, checked on every use.

Every request with an access token needs the user's row (active, restrictions, ``tokens_valid_after``):
read from PostgreSQL it was one round trip and ~7 % of the web process's CPU per order. Here a process
keeps the rows it has read, each with the *version token* it was read under. The token lives in Redis
(``xbit:user-version:<id>``, read and written by a plain redis-py client: Django's cache API costs
several times the read itself) and is replaced by a fresh one after every committed change of the row;
the request reads it first, so a copy is used only while the row has not changed since it was read.

Every way a row changes replaces the token: ``save()`` and ``delete()`` (Django's signals) and
``User.objects.….update()`` (``models.users_updated``). The token is replaced after the commit, so a
reader never caches a row a rollback undid. Reading the token *before* the row makes the order safe: a
change committed after the token was read replaces it, and the next request reloads.

What can go wrong is covered by never trusting a copy more than ``MAX_AGE_S``: a replacement that failed
(Redis unreachable at that moment) or a change written around the ORM costs at most that long. Without a
token (Redis flushed, first read) one is created with ``SET NX`` and the row is read; with Redis
unreachable nothing is cached and every request reads the database as before.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from redis.exceptions import RedisError

from core.accounts.models import User, users_updated
from core.accounts.selectors import active_user
from core.redis_retry import restart_tolerant

logger = logging.getLogger(__name__)

MAX_AGE_S = 5.0  # the longest a copy is trusted, whatever its token says
MAX_ENTRIES = 100_000  # beyond it the copies are dropped and read again
VERSION_TTL_S = 24 * 3600  # a token unused for a day goes; the next request makes a new one

_lock = threading.Lock()
# user id -> (version token, time.monotonic() when read, the row as ``User.from_db`` takes it)
_rows: dict[int, tuple[str, float, tuple[Any, ...]]] = {}
_attnames: list[str] = [f.attname for f in User._meta.concrete_fields]


def version_key(user_id: int) -> str:
    return f"xbit:user-version:{int(user_id)}"


_client: redis.Redis | None = None
_client_lock = threading.Lock()


def _redis() -> redis.Redis:
    global _client
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(
                settings.REDIS_URL, decode_responses=True, **restart_tolerant(settings.REDIS_URL)
            )
        return _client


# version_token's answer when Redis could not be asked: the row is read and not kept, and Redis is not
# asked again for this request (each attempt waits out the client's retries)
UNREACHABLE = ""


def version_token(user_id: int) -> str | None:
    """The user's version token now; None when there is none yet, ``UNREACHABLE`` when Redis is."""
    return version_token_with(user_id, ())[0]


def version_token_with(user_id: int, keys: Sequence[str]) -> tuple[str | None, list[str] | None]:
    """``version_token`` and, in the same round trip, the text values of ``keys`` (None for a key
    that is absent). The values are None when Redis is unreachable, and when one of them is not text
    (nothing the platform writes): the caller then asks the database, as for an unreachable Redis."""
    try:
        if keys:
            values = cast(list[Any], _redis().mget([version_key(user_id), *keys]))
        else:
            values = [_redis().get(version_key(user_id))]
    except RedisError:
        return UNREACHABLE, None
    except UnicodeDecodeError:  # one of ``keys`` is not text: the token alone, then
        if not keys:
            raise
        return version_token(user_id), None
    token = values[0]
    return (token if isinstance(token, str) else None), list(values[1:])


def cached_active_user(user_id: int, token: str | None) -> User | None:
    """The active user ``user_id``, from this process's copy when it was read under ``token`` (the
    version token read from Redis for this request: None when there was none, ``UNREACHABLE``) less
    than ``MAX_AGE_S`` ago; else from the database. A new instance per call: requests never share
    one."""
    if token:
        entry = _rows.get(user_id)
        if entry is not None and entry[0] == token and time.monotonic() - entry[1] < MAX_AGE_S:
            return User.from_db(connection.alias, _attnames, entry[2])
    user = active_user(user_id)
    if token is None:
        token = _claim_token(user_id)
    with _lock:
        if user is None or not token:
            _rows.pop(user_id, None)
        else:
            if len(_rows) >= MAX_ENTRIES:
                _rows.clear()
            _rows[user_id] = (token, time.monotonic(), tuple(getattr(user, name) for name in _attnames))
    return user


def _claim_token(user_id: int) -> str | None:
    """A version token for a user who had none (first read, Redis flushed): set only if still absent —
    a change replacing it meanwhile wins, and this read is then not cached."""
    fresh = uuid.uuid4().hex
    try:
        return fresh if _redis().set(version_key(user_id), fresh, nx=True, ex=VERSION_TTL_S) else None
    except RedisError:
        return None


def users_changed(ids: Iterable[int]) -> None:
    """After the current transaction commits (at once outside one): new version tokens for ``ids`` in
    Redis, so every process reads the rows again; this process drops its copies now too."""
    ids = [int(i) for i in ids]
    with _lock:
        for user_id in ids:
            _rows.pop(user_id, None)

    def replace() -> None:
        with _lock:
            for user_id in ids:
                _rows.pop(user_id, None)
        try:
            pipe = _redis().pipeline(transaction=False)
            for user_id in ids:
                pipe.set(version_key(user_id), uuid.uuid4().hex, ex=VERSION_TTL_S)
            pipe.execute()
        except RedisError:  # other processes trust their copies at most MAX_AGE_S longer
            logger.warning("user version tokens not replaced (Redis unreachable) for %d user(s)", len(ids))

    transaction.on_commit(replace)


def _on_save(sender: type[User], instance: User, **kwargs: Any) -> None:
    users_changed([instance.pk])


def _on_update(sender: type[User], ids: list[int], **kwargs: Any) -> None:
    users_changed(ids)


post_save.connect(_on_save, sender=User, dispatch_uid="user_cache_save")
post_delete.connect(_on_save, sender=User, dispatch_uid="user_cache_delete")
users_updated.connect(_on_update, sender=User, dispatch_uid="user_cache_update")


def clear() -> None:
    """Drop every copy in this process (tests)."""
    with _lock:
        _rows.clear()
