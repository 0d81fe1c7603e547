"""Each user's event log in Redis: the per-user sequence and the retained frames a client resumes from.

Redis layout (prefix ``xbit:us``)::

    xbit:us:epoch                  string  the logs' epoch (``epoch``): a new one after Redis lost its data
    xbit:us:seq:<user>             string  the user's last sequence number (INCR; never expires)
    xbit:us:log:<user>             stream  one entry per event, id ``<seq>-0``; fields c (channel),
                                           t (ms), f (the frame's JSON text, sent as is); trimmed to the
                                           retention window (events and seconds), expires when idle
    xbit:us:done:<event>:<user>    string  "<first seq> <last seq>" of a domain event already appended
                                           for this user (kept for the retention window): a redelivered
                                           event is appended once, so sequences never repeat or skip

:func:`append` assigns the sequence numbers and appends the frames of one domain event for one user in a
single Lua script, so a crash leaves either all of the event's frames or none.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from django.conf import settings

from core.redis_retry import restart_tolerant
from core.text import ascii_int

PREFIX = "xbit:us"


def seq_key(user_id: int) -> str:
    return f"{PREFIX}:seq:{user_id}"


def log_key(user_id: int) -> str:
    return f"{PREFIX}:log:{user_id}"


EPOCH_KEY = f"{PREFIX}:epoch"


def done_key(event_id: str, user_id: int) -> str:
    return f"{PREFIX}:done:{event_id}:{user_id}"


def group_name(user_id: int) -> str:
    """The Channels group of a user's sockets. Pub/sub channels are server-wide, not per Redis
    database: the database's number keeps two platforms sharing a server (parallel test runs, a
    benchmark beside ``make run``) from hearing each other's users."""
    return f"us.{redis_db()}.{user_id}"


@functools.cache
def redis_db() -> int:
    path = urlsplit(settings.REDIS_URL).path.strip("/")
    return ascii_int(path) or 0


# KEYS: seq, log, done. ARGV: done ttl (s), max events, oldest kept (ms), now (ms), log ttl (s), then
# (channel, data JSON) pairs. Returns {1, seq, channel, frame, seq, channel, frame, …} for a new event or
# {0, "<first> <last>"} for one already appended.
APPEND_LUA = """
local done = redis.call('GET', KEYS[3])
if done then return {0, done} end
local out = {1}
local first, last
for i = 6, #ARGV, 2 do
    local seq = redis.call('INCR', KEYS[1])
    local frame = '{"type":"event","channel":"' .. ARGV[i] .. '","seq":' .. seq .. ',"ts":' .. ARGV[4]
        .. ',"data":' .. ARGV[i + 1] .. '}'
    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq .. '-0', 'c', ARGV[i], 't', ARGV[4], 'f', frame)
    first = first or seq
    last = seq
    out[#out + 1] = seq
    out[#out + 1] = ARGV[i]
    out[#out + 1] = frame
end
if first then
    redis.call('SET', KEYS[3], first .. ' ' .. last, 'EX', ARGV[1])
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 64)
    local cut
    for _, entry in ipairs(oldest) do
        if tonumber(entry[2][4]) < tonumber(ARGV[3]) then cut = entry[1] else break end
    end
    if cut then
        redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(string.match(cut, '^(%d+)')) + 1) .. '-0')
    end
    redis.call('EXPIRE', KEYS[2], ARGV[5])
end
return out
"""


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    channel: str
    text: str


# by the loop itself, not its id(): a closed loop's id can be given to a new one, which would then get
# a pool bound to the dead loop
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def client() -> aioredis.Redis:
    """An asyncio client of the running event loop (a pool belongs to the loop that made it)."""
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        found = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True, **restart_tolerant())
        _clients[loop] = found
    return found


def now_ms() -> int:
    return int(time.time() * 1000)


async def append(
    user_id: int,
    event_id: str,
    items: list[tuple[str, Any]],
    *,
    retention_seconds: int,
    retention_events: int,
) -> list[Frame]:
    """Append one domain event's frames ``(channel, data)`` to the user's log; returns the frames with
    their sequence numbers — also when the event was appended before (a redelivery), so the caller can
    publish them again (sockets drop a sequence they already sent)."""
    if not items:
        return []
    now = now_ms()
    args: list[Any] = [retention_seconds, retention_events, now - retention_seconds * 1000, now]
    args.append(retention_seconds + 60)
    for channel, data in items:
        args += [channel, json.dumps(data, separators=(",", ":"), default=str)]
    redis = client()
    out = await redis.eval(  # type: ignore[misc]
        APPEND_LUA, 3, seq_key(user_id), log_key(user_id), done_key(event_id, user_id), *args
    )
    if int(out[0]) == 1:
        return [Frame(int(out[i]), out[i + 1], out[i + 2]) for i in range(1, len(out), 3)]
    first, last = (int(x) for x in str(out[1]).split())
    return await read_range(user_id, first - 1, last)


async def read_range(user_id: int, after: int, upto: int | None = None) -> list[Frame]:
    """Retained frames with ``after < seq <= upto`` (``upto`` None: to the end), in order."""
    entries = await client().xrange(
        log_key(user_id), f"{after + 1}-0", f"{upto}-0" if upto is not None else "+"
    )
    return [Frame(int(entry_id.split("-", 1)[0]), fields["c"], fields["f"]) for entry_id, fields in entries]


async def last_seq(user_id: int) -> int:
    return int(await client().get(seq_key(user_id)) or 0)


async def epoch() -> str:
    """The life of the user logs in this Redis: made by the first socket to join, lost with the logs,
    the sequences and the sockets' groups when Redis restarts without its data. A socket that joined
    under one epoch and sees another (or none) can no longer be caught up: it is told to reconnect."""
    redis = client()
    token = uuid.uuid4().hex
    if await redis.set(EPOCH_KEY, token, nx=True):
        return token
    return str(await redis.get(EPOCH_KEY) or token)


async def last_seqs(user_ids: list[int]) -> tuple[list[int], str | None]:
    """The users' last sequences and the epoch, in one read (the heartbeat's)."""
    values = await client().mget([*(seq_key(u) for u in user_ids), EPOCH_KEY])
    return [int(v or 0) for v in values[:-1]], values[-1]


async def can_resume(user_id: int, after: int) -> tuple[bool, int]:
    """(whether every event after ``after`` is still retained, the user's last sequence)."""
    pipe = client().pipeline(transaction=False)
    pipe.get(seq_key(user_id))
    pipe.xrange(log_key(user_id), f"{after + 1}-0", f"{after + 1}-0")
    current_raw, entry = await pipe.execute()
    current = int(current_raw or 0)
    return (after == current or bool(entry)) and 0 <= after <= current, current


# ---------------------------------------------------------------------------------- connections
# xbit:us:conns:<user>  zset  member: the socket's channel name, score: last sign of life (s). A web
# process that dies leaves members that stop being refreshed; they no longer count after ``stale_s``.
CLAIM_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 60)
return 1
"""


def conns_key(user_id: int) -> str:
    return f"{PREFIX}:conns:{user_id}"


async def connection_claim(user_id: int, name: str, *, limit: int, stale_s: float) -> bool:
    """Count this socket among the user's connections unless the user already has ``limit``."""
    args = [str(time.time()), str(stale_s), str(limit), name]
    ok = await client().eval(CLAIM_LUA, 1, conns_key(user_id), *args)  # type: ignore[misc]
    return bool(ok)


async def connection_release(user_id: int, name: str) -> None:
    await client().zrem(conns_key(user_id), name)


async def connections_refresh(members: list[tuple[int, str]], *, stale_s: float) -> None:
    if not members:
        return
    pipe = client().pipeline(transaction=False)
    now = time.time()
    for user_id, name in members:
        pipe.zadd(conns_key(user_id), {name: now}, xx=True)
        pipe.expire(conns_key(user_id), int(stale_s) + 60)
    await pipe.execute()
