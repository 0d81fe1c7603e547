"""Liquidation execution in the ledger domain (spec 03, "Execution").

Risk detects and sends a command (its ``trigger_id`` is the idempotency key); these services turn one
position's liquidation into fills, position changes and ledger transfers, and report what happened.
They never decide WHETHER to liquidate — only how — and never import risk.

* :mod:`~trading.liquidation.records`: :class:`LiquidationClose` (what a close did) and its events;
* :mod:`~trading.liquidation.settlement`: the fill request, fee rate and settlement of an INTERNAL close;
* :mod:`~trading.liquidation.internal`: the one-by-one INTERNAL close;
* :mod:`~trading.liquidation.batch`: many INTERNAL closes in one transaction, set based;
* :mod:`~trading.liquidation.hyperliquid`: the HYPERLIQUID close and its drift settlement;
* :mod:`~trading.liquidation.announce`: events, refreshed displayed prices and emails after a close;
* :mod:`~trading.liquidation.prices`: the displayed liquidation prices of a user's positions.

**The liquidation fee rule, one rule for both venues.** A liquidation is a taker close: the fill is
charged the venue's taker fee on the closed notional (``FeeSchedule``: INTERNAL's, or the HYPERLIQUID
schedule HL-routed closes pay), recorded on the fill as its fee.

* isolated: the user loses exactly the position's isolated margin — never cash. Out of the margin, in
  order: the realized loss at the close price, the fee (capped at what the loss left, so nothing when
  the loss took it all), and the rest, which is NOT returned: the platform takes the position over
  at the trigger mark as HL's backstop liquidator does, and HL's backstop keeps the margin too
  (spec 03: "the user's isolated margin is zeroed"). A loss beyond the margin is the reserve's.
* cross: the fee is charged from cash like any close (capped at the cash left; never negative).

* INTERNAL, settled at the trigger mark through ``execution.fill_apply`` (is_liquidation):
  - isolated: the margin less the fee is client loss, split platform (B-book) / risk reserve by
    ``reserve_share`` (80/20): ``fill_apply`` splits the realized loss and takes the fee from the
    margin; the rest of the margin (still on the margin account) is taken here with the
    complementary split, so the shares of the whole client loss are exact to the micro-dollar;
  - cross: realized loss from cash, split 80/20 by ``fill_apply``; the fee from cash;
  - bankrupt (loss beyond what the user has): the user's balance stops at zero and the risk reserve
    pays the uncollected part to the B-book (recorded as ``bankrupt_amount``).
* HYPERLIQUID, through ``trading.positions.reduce_only_close(..., is_liquidation=True)`` (HL's real
  fills via ``fill_apply``, which takes HL's loss and the fee from the isolated margin and the rest as
  the liquidation charge to ``fee_revenue``/``liquidation``), then settled here: drift = HL's P&L −
  XBIT's P&L at the trigger mark (isolated: the reserve makes the liquidation charge whole when HL lost
  more); cross users are settled at XBIT's computed value (the reserve refunds what HL took beyond it;
  a favourable difference is platform profit unless ``refund_favourable_drift``).

``loss`` on a close is the client loss without the fee (isolated: the margin less the fee), ``fee`` the
fee, ``margin_zeroed`` the margin the user lost (isolated: ``loss + fee``).

Every INTERNAL service runs inside the caller's transaction, which must hold ``user_lock`` (taken
first) and the position row. Events: ``trading.fill`` (from ``fill_apply``), ``trading.liquidation``
(for risk and consoles) and ``user.liquidation`` (the user's websocket stream); an email on commit.
"""
