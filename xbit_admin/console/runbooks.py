"""Runbooks: for every breaker kind, alert rule and platform switch the banner names — what it
means, what to check, what to do, and which switch undoes it. Linked from the banner, the alerts page and
the breaker table. Text only; the console renders it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Runbook:
    title: str
    means: str
    check: tuple[str, ...]
    do: tuple[str, ...]
    undo: str
    links: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (label, console URL name)


BREAKERS: dict[str, Runbook] = {
    "DAILY_LOSS": Runbook(
        "Daily loss breaker",
        "Today's (UTC) net loss on INTERNAL positions passed the alert or trip level. Tripped, every asset is "
        "forced to Hyperliquid (reason daily_loss): the B-book takes no new risk today.",
        (
            "Overview: today's B-book P&L and which assets lost.",
            "Hedge: is the net exposure hedged?",
            "Risk config: daily_loss_alert / daily_loss_trip are the levels.",
        ),
        (
            "Hedge the largest exposures (Hedge → manual hedge) if the policy lags.",
            "Leave it tripped unless the loss figure is wrong (then check reconciliation first).",
        ),
        "Resets at the next UTC day; a Risk Manager may reset it early from the breaker table (audited).",
        (("Hedge", "console:hedge"), ("Risk config", "console:risk_config")),
    ),
    "VOLATILITY": Runbook(
        "Volatility breaker",
        "An asset's mark moved more than volatility_move within volatility_window_seconds. Its new orders go "
        "to Hyperliquid (reason volatility) until the market calms.",
        (
            "Routing: the asset's row shows the force-HL reason.",
            "The mark chart on the asset's routing page.",
        ),
        (
            "Usually nothing: it resets after volatility_reset_minutes calm minutes.",
            "If the move is a bad print, compare HL's price with another source before any reset.",
        ),
        "Automatic after N calm minutes; a Risk Manager may reset it from the breaker table.",
        (("Routing", "console:routing"),),
    ),
    "PRICE_JUMP": Runbook(
        "Price-jump breaker",
        "One price update jumped more than price_jump_move. The last valid price is held for the asset (no "
        "liquidation on the jump) and new orders go to Hyperliquid (reason stale_price).",
        (
            "Is the jump real? Compare HL's mark with an external venue.",
            "Liquidations: is anything waiting on the held price?",
        ),
        (
            "Wait for price_jump_reset_updates normal updates; it resets itself.",
            "If the new level is real and persistent, reset it so liquidations run at the real price.",
        ),
        "Automatic after N normal updates; Risk Manager reset from the breaker table.",
        (("Liquidations", "console:liquidations"),),
    ),
    "HL_LATENCY": Runbook(
        "HL latency breaker",
        "Hyperliquid market-data round trips are slower than latency_trip_ms. Prices we internalize at may be "
        "stale, so every asset is forced to Hyperliquid (reason hl_latency): internalization halts.",
        (
            "Venue health: the latency chart and order round trip now.",
            "Is our host loaded (CPU, network) or is HL slow for everyone?",
        ),
        (
            "Nothing while it is high: orders still execute on HL.",
            "If the feed process is stuck, restart the feed (the latency is measured again from zero).",
        ),
        "Automatic when latency is back under latency_alert_ms.",
        (("Venue health", "console:venue"),),
    ),
    "HL_DISCONNECT": Runbook(
        "HL disconnect breaker",
        "No Hyperliquid market data for longer than disconnect_trip_seconds. Every market is HALTED (no new "
        "orders); liquidations continue on the last valid prices.",
        (
            "Venue health: connected? last message age?",
            "Is api.hyperliquid.xyz reachable from the host?",
            "The feed process log: reconnect attempts and errors.",
        ),
        (
            "Restore the feed (network, restart the feed process).",
            "Once data flows and reconciliation passes, the gate reopens; confirm on the banner.",
        ),
        "Automatic once data flows again and the resync gate passes; an operator may reset it.",
        (("Venue health", "console:venue"), ("Reconciliation", "console:reconciliation")),
    ),
    "RESERVE": Runbook(
        "Risk reserve breaker",
        "The risk reserve fell below reserve_normal (WARNING: routing thresholds are scaled down) or "
        "reserve_halt (TRIPPED: every asset forced to Hyperliquid).",
        ("Liquidity / reserve balance on the overview.", "Recent liquidations that drew on the reserve."),
        ("Top the reserve up (Risk Manager, manage_reserve) if the platform should keep internalizing.",),
        "Automatic when the reserve is back above its threshold.",
        (("Liquidations", "console:liquidations"),),
    ),
    "DRIFT": Runbook(
        "Drift breaker",
        "For an asset, Hyperliquid's actual P&L differs from the P&L we computed beyond the critical rate. "
        "Hyperliquid routing is halted for the asset until someone understands why.",
        (
            "Drift: the records over the critical rate and their positions.",
            "Reconciliation: HL positions and account value dimensions.",
        ),
        ("Find the cause (fees, funding mirror, a missed fill), correct it, then reset.",),
        "Operator only: reset from the breaker table once the cause is known (audited).",
        (("Drift", "console:drift"), ("Reconciliation", "console:reconciliation")),
    ),
    "LIQUIDATION_FAILURE": Runbook(
        "Liquidation-failure breaker",
        "A liquidation failed its retries and was escalated. New orders for the asset go to Hyperliquid; at "
        "escalation the asset is switched to HL mode.",
        ("Liquidations: the escalation queue, the position and the error.", "Venue health: rejects on HL?"),
        ("Close the position by hand (client card → Close at market) or on HL, then reset.",),
        "Operator only: reset from the breaker table.",
        (("Liquidations", "console:liquidations"),),
    ),
    "KILL_SWITCH": Runbook(
        "Kill switch",
        "An operator halted trading platform-wide: every market HALTED, or REDUCE-ONLY (closes only).",
        ("The audit log: who turned it on, and why.",),
        ("Resolve the incident named in the reason.",),
        "Operator only: Risk config → breaker table → kill switch “Turn off” (audited).",
        (("Risk config", "console:risk_config"), ("Audit log", "console:audit")),
    ),
}

SWITCHES: dict[str, Runbook] = {
    "api_mode": Runbook(
        "API mode",
        "OPEN: normal. REDUCE_ONLY: traders may close and withdraw but open nothing. MAINTENANCE: every trader "
        "request answers 503 with the maintenance message.",
        ("Switches: who changed it and the reason.",),
        ("Tell support what clients see.",),
        "Switches → api_mode back to OPEN.",
        (("Switches", "console:switches"),),
    ),
    "degradation_level": Runbook(
        "Degradation level",
        "One click that sets several switches at once (spec 10). 1: internalization off, HL for new orders. "
        "2: reduce-only API, every asset HL mode. 3: maintenance.",
        ("Switches: the saved values it will restore.",),
        ("Lower the level step by step as the incident resolves.",),
        "Switches → degradation level 0 restores the values saved before degradation.",
        (("Switches", "console:switches"),),
    ),
    "order_gate": Runbook(
        "Order gate",
        "The platform's readiness gate: closed while the order path cannot trust its state (start-up resync, "
        "after an HL disconnect until reconciliation passes). New orders are refused with a clear code.",
        ("Reconciliation: which dimension blocks.", "Venue health: is HL data flowing?"),
        ("Fix the blocking dimension; the gate reopens by itself when the checks pass.",),
        "Automatic (the gate reopens after a passing resync).",
        (("Reconciliation", "console:reconciliation"),),
    ),
}

ALERTS: dict[str, Runbook] = {
    "marketdata.feed_down": Runbook(
        "Market-data feed down",
        "The Hyperliquid feed stopped delivering. Prices age; the HL disconnect breaker follows if it lasts.",
        ("Venue health: connected, last message age.", "The feed process is running?"),
        ("Restart the feed; check network egress to Hyperliquid.",),
        "Resolves itself once messages flow.",
        (("Venue health", "console:venue"),),
    ),
    "risk.auto_switch": Runbook(
        "Automatic routing switch",
        "An asset's routing mode changed automatically (exposure crossed its threshold).",
        ("Routing: the asset's mode, exposure and thresholds.",),
        ("Hedge if the policy recommends it; check the thresholds are right.",),
        "Routing → switch the asset's mode back (audited), or turn auto-switch off.",
        (("Routing", "console:routing"),),
    ),
    "risk.drift": Runbook(
        "Drift on a position",
        "HL's realised P&L differs from ours on one close, liquidation or funding.",
        ("Drift: the record, its position and fills.",),
        ("Explain it; refund the user if the policy says so.",),
        "Nothing to undo; the DRIFT breaker is separate.",
        (("Drift", "console:drift"),),
    ),
    "risk.drift_daily": Runbook(
        "Daily drift total",
        "The day's summed drift passed the review or critical level.",
        ("Drift: today's records by asset.",),
        ("Review the largest; escalate to risk if systematic.",),
        "Nothing to undo.",
        (("Drift", "console:drift"),),
    ),
    "risk.exposure_asset": Runbook(
        "Exposure on one asset",
        "The platform's B-book exposure on an asset passed its alert or critical level.",
        ("Routing and Hedge: the asset's net exposure and hedge.",),
        ("Hedge, or switch the asset to HL mode.",),
        "Routing mode back to NORMAL once exposure is down.",
        (("Hedge", "console:hedge"), ("Routing", "console:routing")),
    ),
    "risk.exposure_total": Runbook(
        "Total exposure",
        "The sum of B-book exposures passed its alert or critical level.",
        ("Overview: exposure by asset.",),
        ("Hedge the largest; consider degradation level 1.",),
        "Degradation back to 0 when resolved.",
        (("Overview", "console:overview"),),
    ),
    "risk.max_internal_exposure": Runbook(
        "Internal exposure cap",
        "Orders were routed to HL because internalizing them would pass the cap.",
        ("Routing: the cap and the current exposure.",),
        ("Nothing urgent: the cap did its job.",),
        "Raise the cap in Risk config only with a reason.",
        (("Risk config", "console:risk_config"),),
    ),
    "risk.hedge.capacity": Runbook(
        "Hedge capacity",
        "The hedge account cannot margin every target at its leverage.",
        ("Hedge: capacity, account value, margin ratio.",),
        ("Top the hedge account up (cold → hot → HL).",),
        "Resolves when capacity covers the targets.",
        (("Hedge", "console:hedge"), ("Liquidity", "console:liquidity")),
    ),
    "risk.hedge.deleverage": Runbook(
        "Hedge deleverage",
        "The hedge account's margin ratio forced the engine to reduce hedges.",
        ("Venue health: both HL accounts' margin ratio.",),
        ("Add collateral to the hedge account.",),
        "Resolves when the ratio is back in range.",
        (("Venue health", "console:venue"),),
    ),
    "risk.hedge.halt": Runbook(
        "Hedge halted",
        "The hedge engine stopped placing orders.",
        ("Hedge: the halt reason.",),
        ("Fix the cause; resume from the Hedge page.",),
        "hedge_mode switch back to LIVE.",
        (("Hedge", "console:hedge"),),
    ),
    "risk.hedge.order_failed": Runbook(
        "Hedge order failed",
        "A hedge order was rejected or failed on Hyperliquid.",
        ("Hedge: the order and HL's error.", "Venue health: reject rate."),
        ("Retry by hand if the exposure is large.",),
        "Nothing to undo.",
        (("Hedge", "console:hedge"),),
    ),
    "risk.hedge.top_up": Runbook(
        "Hedge top-up needed",
        "The hedge account needs more collateral.",
        ("Liquidity: hot wallet balance.",),
        ("Propose a cold → hot top-up; move it to the hedge account.",),
        "Nothing to undo.",
        (("Liquidity", "console:liquidity"),),
    ),
    "risk.liquidation_escalated": Runbook(
        "Liquidation escalated",
        "A liquidation failed its retries and needs a person.",
        ("Liquidations: the escalation queue.",),
        ("Close the position by hand; then reset the breaker.",),
        "LIQUIDATION_FAILURE breaker reset (operator).",
        (("Liquidations", "console:liquidations"),),
    ),
    "switches.canary_rollback": Runbook(
        "Canary rolled back",
        "A canary stage failed its health targets and was rolled back.",
        ("Switches: the canary panel's figures against their targets.",),
        ("Find the failing metric before retrying.",),
        "Start the canary again once fixed.",
        (("Switches", "console:switches"),),
    ),
    "switches.liquidation_off": Runbook(
        "Liquidation engine off",
        "liquidation_mode is OFF or SHADOW: nobody is being liquidated.",
        ("Switches: who turned it off and why.",),
        ("Turn it back to LIVE as soon as possible.",),
        "Switches → liquidation_mode LIVE.",
        (("Switches", "console:switches"),),
    ),
    "wallets.deposit_held": Runbook(
        "Deposit held",
        "A deposit was held for review (address, amount or chain rule).",
        ("The client card's journal: the deposit and its steps.",),
        ("Credit or refund after review.",),
        "Nothing to undo.",
        (("Users", "console:users"),),
    ),
    "wallets.hot_wallet_warning": Runbook(
        "Hot wallet low",
        "A chain's hot wallet is under its warning level.",
        ("Liquidity: the chain's hot balance.",),
        ("Propose a cold → hot top-up.",),
        "Resolves when topped up.",
        (("Liquidity", "console:liquidity"),),
    ),
    "wallets.hot_wallet_critical": Runbook(
        "Hot wallet critical",
        "A chain's hot wallet cannot cover pending withdrawals for long.",
        ("Liquidity: pending withdrawals against the balance.",),
        ("Top up now; consider pausing that chain's withdrawals.",),
        "Switches → withdrawals_enabled for the chain back on after the top-up.",
        (("Liquidity", "console:liquidity"),),
    ),
    "wallets.hot_wallet_emergency": Runbook(
        "Hot wallet emergency",
        "A chain's hot wallet is nearly empty.",
        ("Liquidity.",),
        ("Pause that chain's withdrawals (Switches) and top up.",),
        "withdrawals_enabled back on after the top-up.",
        (("Switches", "console:switches"),),
    ),
    "wallets.liquidity_coverage": Runbook(
        "Liquidity coverage",
        "Hot + cold cover less of the users' balances than required.",
        ("Liquidity: coverage by chain.",),
        ("Move funds between chains or add capital.",),
        "Nothing to undo.",
        (("Liquidity", "console:liquidity"),),
    ),
}


def runbook_for(kind: str, key: str) -> Runbook | None:
    if kind == "breaker":
        return BREAKERS.get(key.upper())
    if kind == "switch":
        return SWITCHES.get(key)
    if kind == "alert":
        if key.startswith("risk.breaker."):
            return BREAKERS.get(key.removeprefix("risk.breaker.").upper())
        return ALERTS.get(key)
    return None


def alert_runbook_key(rule: str) -> tuple[str, str] | None:
    """The runbook an alert's rule links to (kind, key), or None when there is none."""
    if rule.startswith("risk.breaker.") and rule.removeprefix("risk.breaker.").upper() in BREAKERS:
        return ("breaker", rule.removeprefix("risk.breaker.").upper())
    return ("alert", rule) if rule in ALERTS else None
