"""The HL market-data feed (``manage.py run_feed``): SDK websocket -> Redis quotes + in-process hooks.

Threads:

* the SDK's websocket thread runs ``Feed._on_message``: parse, write the quote to Redis
  (``trading.marketdata``), keep an in-memory mirror, then call the ``on_book`` / ``on_mark`` hooks;
* the supervisor (the thread calling ``Feed.run``) owns the connection: connect, subscribe, watch
  for a dead socket or silence, tear down and rebuild with exponential backoff (1 s … 30 s), fire
  ``on_disconnect`` / ``on_reconnect``, write ``FeedStatus`` (≤ 1/s) and push marks to consoles
  (one batched push on topic ``markets`` at most every 250 ms).

One feed per name is active across processes (a Redis leader lock, ``xbit:md:feed-leader:<name>``);
another ``run_feed`` waits as a standby and takes over when the leader stops or dies.

The SDK never reconnects or resubscribes by itself and HL never replays what was missed: after every
reconnect ``on_reconnect`` hooks run so HL-state consumers re-read by REST. The feed only DETECTS and
EXPOSES (quote ages, latency, disconnects); risk decides what to do about them. The only action it
takes is an ops alert (``marketdata.feed_down``, P1) after 10 s without data, resolved on reconnect.

Latency is measured as round trips on the feed's own socket: HL's ``{"method":"ping"}`` every
``latency_probe_s`` (one in flight), timed on our monotonic clock until ``{"channel":"pong"}`` comes back
behind the market data queued before it. The recent round trips and an unanswered ping go to Redis
(``marketdata.latency_update``) for the HL_LATENCY breaker. HL's message timestamps are never used for
it: receipt minus HL's time is clock skew plus delay, so an HL clock behind ours looked like latency and
one ahead hid it. Pongs do not count as data: silence (no market data) is still silence.

Hook API (functions run in the feed process; an exception is logged and counted, never fatal)::

    from trading.feed.hooks import FEED_HOOKS

    @FEED_HOOKS.on_book        # fn(asset: str, quote: Quote) — every l2Book message (websocket thread)
    @FEED_HOOKS.on_mark        # fn(asset: str, quote: Quote) — every activeAssetCtx (mark observation)
    @FEED_HOOKS.on_reconnect   # fn() — after a reconnect, once resubscribed (supervisor thread)
    @FEED_HOOKS.on_disconnect  # fn(seconds_down: float) — when the loss is detected, then once a
                               # second while still down (seconds since the last HL message)

Book and mark hooks run on the websocket thread: keep them fast (µs); hand slow work to a queue.

Modules: :mod:`~trading.feed.supervisor` (``Feed``: the connection and its supervision, ``run_feed``),
:mod:`~trading.feed.state` (options and the shared state), :mod:`~trading.feed.leader` (the leader
lock), :mod:`~trading.feed.latency` (ping/pong round trips), :mod:`~trading.feed.quotes` (messages to
quotes, console pushes), :mod:`~trading.feed.status` (``FeedStatus`` row and the ops alert),
:mod:`~trading.feed.hooks` (the hook registry) and :mod:`~trading.feed.metrics`.
"""
