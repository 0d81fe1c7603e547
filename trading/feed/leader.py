"""The feed's leader lock: one active feed per name across processes.

One active instance per asset shard, leader lock in Redis (``xbit:md:feed-leader:<name>``): hooks such
as liquidation watchers must not run twice. A standby polls for the lock and takes over when the leader
stops (released at once) or dies (after ``lock_ttl_s``)."""

from __future__ import annotations

import logging
import time

from trading import marketdata
from trading.feed.state import FeedState

logger = logging.getLogger(__name__)

_RENEW_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class FeedLeadership(FeedState):
    """Taking, keeping and releasing the leader lock."""

    def _lock_key(self) -> str:
        return f"{marketdata.KEY_PREFIX}:feed-leader:{self.options.name}"

    def _lead(self) -> bool:
        """Become (or stay) the leader; waits in standby. False only when stopped."""
        if not self.options.leader_lock:
            return not self.stop_event.is_set()
        announced = False
        while not self.stop_event.is_set():
            if self._is_leader:
                return True
            ttl_ms = int(self.options.lock_ttl_s * 1000)
            holder = "?"
            try:
                redis = marketdata.client()
                if redis.set(self._lock_key(), self._token, nx=True, px=ttl_ms):
                    self._is_leader = True
                    self._renew_at = time.monotonic() + self.options.lock_ttl_s / 3
                    logger.info("feed %s: leading as %s", self.options.name, self._token)
                    return True
                holder = str(redis.get(self._lock_key()))
            except Exception:
                self._log_throttled("feed could not reach Redis for its leader lock")
            if not announced:
                announced = True
                logger.info("feed %s: standby, %s leads", self.options.name, holder)
            self.stop_event.wait(self.options.standby_poll_s)
        return False

    def _keep_lead(self) -> bool:
        if not self.options.leader_lock:
            return True
        now = time.monotonic()
        if self._is_leader and now >= self._renew_at:
            self._renew_at = now + self.options.lock_ttl_s / 3
            try:
                kept = marketdata.client().eval(
                    _RENEW_LUA, 1, self._lock_key(), self._token, str(int(self.options.lock_ttl_s * 1000))
                )
            except Exception:  # Redis away: nobody else can take the lock either; keep going
                self._log_throttled("feed could not renew its leader lock")
                return True
            if not kept and not self._retake_vanished_lock():
                self._is_leader = False
                self.last_error = "lost the leader lock"
        return self._is_leader

    def _retake_vanished_lock(self) -> bool:
        """After Redis lost its data the lock is simply gone, not held by another feed: take it again
        and keep the connection (a standby that took it first wins, and this feed stands down)."""
        try:
            taken = marketdata.client().set(
                self._lock_key(), self._token, nx=True, px=int(self.options.lock_ttl_s * 1000)
            )
        except Exception:
            return True  # Redis away again: as above, nobody else can take it either
        if taken:
            logger.warning(
                "feed %s: its leader lock had vanished from Redis; took it again", self.options.name
            )
        return bool(taken)

    def _release_lead(self) -> None:
        if not (self.options.leader_lock and self._is_leader):
            return
        self._is_leader = False
        try:
            marketdata.client().eval(_RELEASE_LUA, 1, self._lock_key(), self._token)
        except Exception:
            logger.warning("feed could not release its leader lock (it expires by itself)")
