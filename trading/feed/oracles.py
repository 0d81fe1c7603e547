"""HL's oracle prices as HL's clock dated them, for funding (spec 04: INTERNAL positions pay HL's rate on
HL's oracle at HL's funding instant, which comes hours of our clock — or a simulated clock — away from
the quote cache's current oracle).

HL's ``activeAssetCtx`` carries no time. Each reading is dated with the latest time HL itself stamped on
a message of the feed (``l2Book``'s ``time``): HL's clock when it published the book that precedes the
context (the feed subscribes to a coin's book before its context, and HL publishes in that order), a
lower bound within one book interval (< 1 s) of when HL computed the context. Never our clock: against
the simulator's manual clock ours is hours away.

Redis layout (prefix ``xbit:md``, beside the quotes)::

    xbit:md:oh:<ASSET>   zset   member "<hl_ms>:<receipt µs>:<oracle>", score hl_ms — the last
                                :data:`ORACLE_HISTORY_SECONDS` of HL's clock; the receipt in the
                                member orders readings HL dated alike (the later received wins)

A cache like the quotes: losing it loses no money — funding then records that it priced on the quote
cache instead (``source: "quote"``).
"""

from __future__ import annotations

from decimal import Decimal

from trading import marketdata

ORACLE_HISTORY_SECONDS = 3 * 3600
# an unchanged oracle is recorded again this often (HL's clock), so a reading is never older than this
ORACLE_RECORD_EVERY_MS = 10_000


def oracle_history_key(asset: str) -> str:
    return f"{marketdata.KEY_PREFIX}:oh:{asset}"


def oracle_record(readings: dict[str, tuple[int, float, Decimal]]) -> None:
    """Add readings ``{asset: (hl_ms, receipt epoch s, oracle)}`` in one pipeline, each set trimmed to
    the last :data:`ORACLE_HISTORY_SECONDS` before its newest reading."""
    if not readings:
        return
    pipe = marketdata.client().pipeline(transaction=False)
    for asset, (hl_ms, received, oracle) in readings.items():
        key = oracle_history_key(asset)
        pipe.zadd(key, {f"{hl_ms}:{int(received * 1_000_000):016d}:{oracle}": hl_ms})
        pipe.zremrangebyscore(key, "-inf", f"({hl_ms - ORACLE_HISTORY_SECONDS * 1000}")
    pipe.execute()


def oracle_at(asset: str, at_ms: int, max_age_s: float) -> tuple[int, Decimal] | None:
    """HL's oracle at ``at_ms`` (HL's clock): the last reading dated at or before it and at most
    ``max_age_s`` older, as ``(its hl_ms, oracle)``; ``None`` without one."""
    rows = marketdata.client().zrevrangebyscore(
        oracle_history_key(asset), at_ms, at_ms - int(max_age_s * 1000), start=0, num=1, withscores=True
    )
    if not rows:
        return None
    member, score = rows[0]
    return int(score), Decimal(member.rpartition(":")[2])


def oracle_history_delete(assets: list[str]) -> None:
    """Forget the readings (tests)."""
    if assets:
        marketdata.client().delete(*[oracle_history_key(a) for a in assets])
