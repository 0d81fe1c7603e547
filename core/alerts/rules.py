"""The alert rule catalogue: every rule the platform raises, its severity, what it means and where to
start. The console's Alerts page and the Slack/PagerDuty messages show the title and runbook hint.

Rules are raised where the condition is detected (``alert_raise`` in the owning app); this module only
describes them. Names are matched with shell-style patterns (``hl.*.margin_ratio``), first match wins.

The P0 set of spec 08 maps onto these rules (``P0_SET``):

* liquidation engine failure → ``risk.liquidation_escalated`` (a liquidation failed its retries, per
  trigger) and ``risk.breaker.liquidation_failure`` (the breaker it trips, per asset);
* HL disconnected > 1 min → ``risk.breaker.hl_disconnect``: the breaker tick (every 5 s) raises it P1
  ("warning") after ``disconnect_alert_seconds`` (10 s) and P0 when it trips after
  ``disconnect_trip_seconds`` (60 s); the market-data feed's own ``marketdata.feed_down`` (P1, after
  10 s without data, per feed process) is the early warning, not the page;
* HL account margin ratio < 150 % → ``hl.<account>.margin_ratio`` (P0 < 150 %, P1 < 300 %);
* hot wallet < 100,000 → ``wallets.hot_wallet_critical`` (P0, per chain; ``hot_critical_level``) and
  ``wallets.hot_wallet_emergency`` (P0 < 20,000: withdrawals halted);
* single-trade drift rate > 5 % → ``risk.drift`` (P0 above ``drift_critical_rate``, P1 above 1 %) and
  the drift breaker ``risk.breaker.drift``;
* user-asset reconciliation deviation > 0.1 % → ``reconciliation.user_assets`` (raised by
  ``risk.reconciliation``; it also keeps the restart gate closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Rule:
    pattern: str
    severity: str  # the usual (highest) severity; the raiser decides per occurrence
    title: str
    meaning: str
    runbook: str
    p0: bool = False


CATALOGUE: tuple[Rule, ...] = (
    # --- P0 set (spec 08) ---------------------------------------------------------------------------
    Rule(
        "risk.liquidation_escalated",
        "P0",
        "Liquidation engine failure",
        "A liquidation failed all its retries; the asset was switched to HL_MODE and the "
        "liquidation-failure breaker tripped.",
        "Liquidations page → escalations queue: close the position by hand, then reset the breaker.",
        p0=True,
    ),
    Rule(
        "risk.breaker.liquidation_failure",
        "P0",
        "Liquidation-failure breaker",
        "New internal risk on the asset is stopped until an operator resets the breaker.",
        "Resolve the escalated liquidations first, then reset the breaker on the Overview page.",
        p0=True,
    ),
    Rule(
        "risk.breaker.hl_disconnect",
        "P0",
        "Hyperliquid disconnected",
        "No HL market data: P1 after 10 s, P0 when the breaker trips after 60 s (every market halted; "
        "liquidation continues on the last valid prices).",
        "Check the feed process and HL status; after recovery: HL state sync, reconciliation, resume.",
        p0=True,
    ),
    Rule(
        "hl.*.margin_ratio",
        "P0",
        "HL account margin ratio",
        "Equity / maintenance margin of an HL account: P1 below 300 %, P0 below 150 % (new HL opens "
        "halted on the trading account).",
        "Hedge page: top up the HL account or reduce the hedge; the halt lifts when the ratio recovers.",
        p0=True,
    ),
    Rule(
        "wallets.hot_wallet_critical",
        "P0",
        "Hot wallet below 100,000",
        "Hot wallet balance of a chain below the critical level; large withdrawals wait, a cold top-up "
        "is proposed.",
        "Liquidity page: approve the cold → hot top-up proposal.",
        p0=True,
    ),
    Rule(
        "wallets.hot_wallet_emergency",
        "P0",
        "Hot wallet emergency",
        "Hot wallet below the emergency level: all withdrawals on the chain are halted.",
        "Liquidity page: top up from cold now; check for a drain (withdrawal queue, recent sends).",
        p0=True,
    ),
    Rule(
        "risk.drift",
        "P0",
        "Single-trade drift",
        "XBIT P&L vs HL P&L on one trade: P1 above 1 %, P0 above 5 % (the drift breaker trips).",
        "Drift page: compare the fill with HL's; check marks and fees before resetting the breaker.",
        p0=True,
    ),
    Rule(
        "risk.breaker.drift",
        "P0",
        "Drift breaker",
        "A single trade drifted above the critical rate.",
        "Drift page; an operator resets the breaker once the cause is understood.",
        p0=True,
    ),
    Rule(
        "reconciliation.user_assets",
        "P0",
        "User-asset reconciliation deviation",
        "Σ user balances vs custody deviates by more than 0.1 % (reserved: the reconciliation job "
        "does not raise it yet).",
        "Reconciliation page: drill down to the rows that differ; halt withdrawals if unexplained.",
        p0=True,
    ),
    # --- the rest ----------------------------------------------------------------------------------
    Rule(
        "marketdata.feed_down",
        "P1",
        "Market-data feed down",
        "A feed process got no HL market data for 10 s (the HL-disconnect breaker pages at 60 s).",
        "Check the feed process logs and HL's websocket status.",
    ),
    Rule(
        "risk.drift_daily",
        "P0",
        "Daily cumulative drift",
        "Σ |drift| today above the review (P1) or critical (P0) amount.",
        "Drift page: per-asset ranking and recent trades.",
    ),
    Rule(
        "risk.exposure_asset",
        "P0",
        "Net exposure per asset",
        "|net exposure| of an asset above the alert (P1) or critical (P0) level.",
        "Routing / Hedge pages: hedge or switch the asset to HL_MODE.",
    ),
    Rule(
        "risk.exposure_total",
        "P0",
        "Total net exposure",
        "Σ |net exposure| above the alert (P1) or critical (P0) level.",
        "Overview page: hedge the largest assets; consider degraded global mode.",
    ),
    Rule(
        "risk.breaker.*",
        "P0",
        "Circuit breaker",
        "A circuit breaker is in warning (P1) or tripped (P0).",
        "Overview page → breakers: the reset rule is shown per breaker.",
    ),
    Rule(
        "hl.position_mismatch",
        "P0",
        "HL position mismatch",
        "Users' HL positions vs the HL trading account differ (P0 halts HL routing for the asset).",
        "Hedge page: compare positions; the halt lifts on the next matching sync.",
    ),
    Rule(
        "risk.hedge.top_up",
        "P1",
        "Hedge account needs a top-up",
        "The hedge account's margin ratio is below 300 %; the message carries the recommended top-up.",
        "Hedge page: move capital from the pool to the hedge account.",
    ),
    Rule(
        "risk.hedge.deleverage",
        "P0",
        "Hedge account de-leveraging",
        "The hedge account's margin ratio is below 200 %: the engine is reducing every hedge.",
        "Hedge page: top up the hedge account now; it must never be liquidated by HL.",
    ),
    Rule(
        "risk.hedge.halt",
        "P0",
        "Hedge account below 150 %",
        "New HL opens are halted and no hedge is increased until the margin ratio recovers.",
        "Hedge page: top up the hedge account; the halt lifts on the next healthy decision.",
    ),
    Rule(
        "risk.hedge.capacity",
        "P1",
        "Hedge capacity exhausted",
        "The hedge account cannot carry every target: uncovered assets were forced to HL.",
        "Hedge page: top up by the recommended amount; the force-HL lifts once covered.",
    ),
    Rule(
        "risk.hedge.order_failed",
        "P1",
        "Hedge order failed",
        "A hedge instruction failed all its retries; the asset was forced to HL.",
        "Hedge page: check HL status and the instruction's error, then place the hedge by hand.",
    ),
    Rule(
        "risk.auto_switch",
        "P2",
        "Automatic mode switch",
        "The routing mode of an asset was switched automatically on its net exposure.",
        "Routing page: the switch log shows the exposure at the switch.",
    ),
    Rule(
        "risk.max_internal_exposure",
        "P1",
        "Internal exposure limit reached",
        "An asset's |net internal exposure| went above its max_internal_exposure: it is forced to HL.",
        "Routing page: the force-HL lifts by itself once exposure falls below the limit × the HL exit "
        "factor; raise the limit (switches page) only with the hedge coverage to match.",
    ),
    Rule(
        "reconciliation.*",
        "P0",
        "Reconciliation mismatch",
        "A reconciliation dimension deviates: P1 above 0.01 %, P0 above 0.1 % (the related operation is paused).",
        "Reconciliation page: read the details and the postings that explain them; resolve, then re-run.",
    ),
    Rule(
        "platform.not_ready",
        "P0",
        "Platform not serving orders",
        "The start-up checks (rebuild, HL resync, reconciliation) did not pass: orders answer 503.",
        "Read the reason on the Overview page; fix it and run manage.py platform_ready.",
    ),
    Rule(
        "wallets.hot_wallet_warning",
        "P1",
        "Hot wallet warning band",
        "Hot wallet in the warning band; deposit addresses are being swept.",
        "Liquidity page: watch the aggregation history.",
    ),
    Rule(
        "wallets.liquidity_coverage",
        "P1",
        "Liquidity coverage",
        "Hot wallets cover less of the user balances than the configured ratio.",
        "Liquidity page: plan a cold → hot top-up.",
    ),
    Rule(
        "wallets.withdrawal_*",
        "P1",
        "Withdrawal queue",
        "Withdrawal queue length, SLA or volume above its threshold.",
        "Withdrawals page: work the approval queue.",
    ),
    Rule(
        "wallets.deposit_held",
        "P2",
        "Deposit held for review",
        "A deposit outside the min/max amount was held.",
        "Users page: review the deposit and credit or refund it.",
    ),
    Rule(
        "wallets.deposit_reorged_after_credit",
        "P0",
        "Credited deposit reorged away",
        "The block of a deposit already credited was replaced by a reorg deeper than the confirmation "
        "count: the chain no longer shows the money the user was credited.",
        "Users page: check the deposit on the chain's explorer; if the transfer is gone, freeze the user's "
        "withdrawals and adjust the balance with a reason (four eyes). Raise the chain's confirmations.",
    ),
    # --- control switches (spec 10) -------------------------------------------------------------------
    Rule(
        "switches.liquidation_off",
        "P0",
        "Liquidation engine OFF",
        "An operator switched liquidation_mode to OFF: nothing is detected or closed while it lasts.",
        "Switches page: set liquidation_mode back to SHADOW or LIVE as soon as the reason is resolved.",
    ),
    Rule(
        "switches.canary_rollback",
        "P1",
        "Canary auto-rollback",
        "The canary's live criteria failed (p99 latency +20 % or error rate > 1 %); the previous stage "
        "was restored.",
        "Switches page → canary: read the criteria, fix the cause, then advance the stage again.",
    ),
)

P0_SET: tuple[Rule, ...] = tuple(r for r in CATALOGUE if r.p0)
UNKNOWN = Rule("*", "P1", "", "No catalogue entry for this rule.", "See the alert message.")


def rule_info(name: str) -> Rule:
    """The catalogue entry for a raised rule name (``UNKNOWN`` when not catalogued)."""
    for rule in CATALOGUE:
        if fnmatchcase(name, rule.pattern):
            return rule
    return UNKNOWN
