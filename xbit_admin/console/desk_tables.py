"""The columns and filters of the risk, liquidity, venue and switches pages' tables (``tables.py``):
which may sort, which filter, what goes in the CSV. Labels carry the unit of their figures."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Q, QuerySet

from core.switches.models import SwitchChange
from core.text import ascii_int
from risk.hedge_models import HedgeInstruction
from risk.models import DeviationLog
from wallets.models import Aggregation, ChainTx, ColdTransfer
from xbit_admin.console.switch_text import change_text
from xbit_admin.console.tables import Column, Filter


def _in_rows(key: str) -> Any:
    """A filter on a computed list: rows whose ``key`` equals the value (case-insensitive)."""

    def apply(rows: list[dict[str, Any]], value: str) -> list[dict[str, Any]]:
        return [r for r in rows if str(r.get(key) or "").upper() == value.strip().upper()]

    return apply


def _field_is(name: str, *, upper: bool = True) -> Any:
    def apply(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
        return qs.filter(**{name: value.strip().upper() if upper else value.strip()})

    return apply


def _email(user: Any) -> str:
    return user.email if user is not None else ""


# --- hedge -------------------------------------------------------------------------------------------

HEDGE_ASSET_COLUMNS = [
    Column("asset", "Asset", sort="asset"),
    Column("net", "Net exposure (USD)", sort="net", num=True),
    Column("target", "Target hedge (USD)", sort="target", num=True),
    Column("current", "Current hedge (USD)", sort="current", num=True),
    Column("gap", "Gap (USD)", sort="gap", num=True),
    Column("leverage", "Leverage (×)", sort="leverage", num=True),
    Column("entry", "Entry (USD)", num=True),
    Column("upnl", "uPnL (USDC)", sort="upnl", num=True),
    Column("cost", "Cost (USDC)", sort="cost", num=True),
    Column(
        "roi", "ROI (%)", sort="roi", num=True, csv=lambda r: None if r["roi"] is None else r["roi"] * 100
    ),
]
HEDGE_ASSET_FILTERS = [
    Filter("asset", "Asset", _in_rows("asset")),
    Filter(
        "gap",
        "Gap",
        lambda rows, v: [r for r in rows if bool(r["gap"]) == (v == "open")],
        (("open", "a gap to close"), ("closed", "on target")),
    ),
]

HEDGE_ORDER_COLUMNS = [
    Column("created_at", "When (UTC)", sort="created_at"),
    Column("asset", "Asset", sort="asset"),
    Column("kind", "Kind", sort="kind"),
    Column("notional", "Notional (USD)", sort="notional", num=True),
    Column("filled_notional", "Filled (USD)", sort="filled_notional", num=True),
    Column("fee", "Fee (USDC)", sort="fee", num=True),
    Column("slippage", "Slippage (USDC)", sort="slippage", num=True),
    Column("status", "Status", sort="status"),
    Column("instruction_id", "Instruction"),
    Column("error", "Error"),
]
HEDGE_ORDER_FILTERS = [
    Filter("asset", "Asset", _field_is("asset")),
    Filter("kind", "Kind", _field_is("kind"), tuple(HedgeInstruction.Kind.choices)),
    Filter("status", "Status", _field_is("status"), tuple(HedgeInstruction.Status.choices)),
]

# --- drift -------------------------------------------------------------------------------------------

DRIFT_RANKING_COLUMNS = [
    Column("asset", "Asset", sort="asset"),
    Column("total", "Σ |drift| (USDC)", sort="total", num=True),
    Column("net", "Net HL − XBIT (USDC)", sort="net", num=True),
    Column("count", "Records", sort="count", num=True),
    Column("alerts", "Alert/critical", sort="alerts", num=True),
]
DRIFT_RANKING_FILTERS = [Filter("asset", "Asset", _in_rows("asset"))]

DRIFT_COLUMNS = [
    Column("created_at", "When (UTC)", sort="created_at"),
    Column("kind", "Kind", sort="kind"),
    Column("asset", "Asset", sort="asset"),
    Column("xbit_pnl", "XBIT P&L (USDC)", sort="xbit_pnl", num=True),
    Column("hl_actual_pnl", "HL P&L (USDC)", sort="hl_actual_pnl", num=True),
    Column("deviation", "Drift (USDC)", sort="deviation", num=True),
    Column(
        "deviation_rate", "Rate (%)", sort="deviation_rate", num=True, csv=lambda d: d.deviation_rate * 100
    ),
    Column("level", "Level", sort="level"),
    Column("ref", "Reference"),
]
DRIFT_FILTERS = [
    Filter("asset", "Asset", _field_is("asset")),
    Filter(
        "kind",
        "Kind",
        _field_is("kind"),
        (("CLOSE", "close"), ("LIQUIDATION", "liquidation"), ("FUNDING", "funding")),
    ),
    Filter("level", "Level", _field_is("level"), tuple(DeviationLog.Level.choices)),
]

# --- liquidity ---------------------------------------------------------------------------------------


HOT_WALLET_COLUMNS = [
    Column("chain", "Chain", sort="chain"),
    Column("level", "Level", sort="level", csv=lambda c: c.level),
    Column("hot_balance", "On chain (USD)", sort="hot_balance", num=True, csv=lambda c: c.hot_balance),
    Column("book", "Book (ledger)", csv=lambda c: {a: str(v) for a, v in c.book.items()}),
    Column("safe", "Safe > (USD)", num=True, csv=lambda c: c.config.hot_safe_level if c.config else None),
    Column(
        "critical",
        "Critical < (USD)",
        num=True,
        csv=lambda c: c.config.hot_critical_level if c.config else None,
    ),
    Column(
        "emergency",
        "Emergency < (USD)",
        num=True,
        csv=lambda c: c.config.hot_emergency_level if c.config else None,
    ),
    Column(
        "watermark",
        "High watermark (USD)",
        num=True,
        csv=lambda c: c.config.hot_high_watermark if c.config else None,
    ),
    Column("checked", "Checked (UTC)", csv=lambda c: c.state.hot_checked_at if c.state else None),
    Column("swept", "Last sweep (UTC)", csv=lambda c: c.state.last_scheduled_sweep_at if c.state else None),
    Column(
        "withdrawals",
        "Withdrawals",
        csv=lambda c: "on" if c.config and c.config.withdrawals_enabled else "off",
    ),
]
HOT_WALLET_FILTERS = [
    Filter(
        "level",
        "Level",
        lambda rows, v: [r for r in rows if r.level == v],
        (("safe", "safe"), ("warning", "warning"), ("critical", "critical"), ("emergency", "emergency")),
    )
]

COLD_COLUMNS = [
    Column("id", "Id", sort="id", num=True),
    Column("created_at", "Proposed (UTC)", sort="created_at"),
    Column("chain", "Chain", sort="chain"),
    Column("direction", "Direction", sort="direction"),
    Column("amount", "Amount", sort="amount", num=True),
    Column("asset", "Asset"),
    Column("proposed_by", "Proposed by", csv=lambda p: _email(p.proposed_by) or "system"),
    Column("decided_by", "Decided by", csv=lambda p: _email(p.decided_by)),
    Column("reason", "Reason"),
    Column("status", "Status", sort="status"),
    Column("tx_hash", "Tx hash"),
]
COLD_FILTERS = [
    Filter("chain", "Chain", _field_is("chain")),
    Filter("status", "Status", _field_is("status"), tuple(ColdTransfer.Status.choices)),
]

AGGREGATION_COLUMNS = [
    Column("id", "Id", sort="id", num=True),
    Column("created_at", "Created (UTC)", sort="created_at"),
    Column("chain", "Chain", sort="chain"),
    Column("amount", "Amount", sort="amount", num=True),
    Column("asset", "Asset"),
    Column("gas_used", "Gas", sort="gas_used", num=True),
    Column("gas_asset", "Gas asset"),
    Column("trigger", "Trigger", sort="trigger"),
    Column("status", "Status", sort="status"),
    Column("tx_hash", "Tx hash"),
    Column("error", "Error"),
]
AGGREGATION_FILTERS = [
    Filter("chain", "Chain", _field_is("chain")),
    Filter("status", "Status", _field_is("status"), tuple(Aggregation.Status.choices)),
    Filter("trigger", "Trigger", _field_is("trigger"), tuple(Aggregation.Trigger.choices)),
]

CHAIN_TX_COLUMNS = [
    Column("id", "Id", sort="id", num=True),
    Column("created_at", "Signed (UTC)", sort="created_at"),
    Column("chain", "Chain", sort="chain"),
    Column("ref", "For"),
    Column("sender", "From"),
    Column("nonce", "Nonce", sort="nonce", num=True),
    Column("attempt", "Attempt", num=True),
    Column("to_address", "To"),
    Column("amount", "Amount", sort="amount", num=True),
    Column("asset", "Asset"),
    Column("max_fee_gwei", "Max fee (gwei)", num=True),
    Column("status", "Status", sort="status"),
    Column("block", "Block", sort="block", num=True),
    Column("tx_hash", "Tx hash"),
]
CHAIN_TX_FILTERS = [
    Filter("chain", "Chain", _field_is("chain")),
    Filter("status", "Status", _field_is("status"), tuple(ChainTx.Status.choices)),
    Filter("ref", "For", lambda qs, v: qs.filter(ref__icontains=v.strip())),
]

# --- venue -------------------------------------------------------------------------------------------

VENUE_SAMPLE_COLUMNS = [
    Column("created_at", "Sampled (UTC)", sort="created_at"),
    Column("latency_ms", "Latency (ms)", sort="latency_ms", num=True),
    Column("connected", "Connected", sort="connected", csv=lambda s: "yes" if s.connected else "no"),
    Column("last_message_age_s", "Last message age (s)", sort="last_message_age_s", num=True),
]
VENUE_SAMPLE_FILTERS = [
    Filter(
        "connected",
        "Connected",
        lambda qs, v: qs.filter(connected=v == "yes"),
        (("yes", "connected"), ("no", "disconnected")),
    ),
    Filter(
        "over",
        "Latency ≥ (ms)",
        lambda qs, v: (
            qs if (ms := ascii_int(v.strip(), max_digits=9)) is None else qs.filter(latency_ms__gte=ms)
        ),
    ),
]

# --- switches ----------------------------------------------------------------------------------------

SWITCH_HISTORY_COLUMNS = [
    Column("at", "Time (UTC)", sort="at"),
    Column("name", "Switch", sort="name"),
    Column("old", "Old", csv=lambda c: change_text(c.name, c.old_value)),
    Column("new", "New", csv=lambda c: change_text(c.name, c.new_value)),
    Column("actor", "By", csv=lambda c: _email(c.actor) or "platform"),
    Column("source", "Source", sort="source"),
    Column("reason", "Reason"),
    Column("old_value", "Old (stored, JSON)", csv=lambda c: json.dumps(c.old_value)),
    Column("new_value", "New (stored, JSON)", csv=lambda c: json.dumps(c.new_value)),
]
SWITCH_HISTORY_FILTERS = [
    Filter(
        "switch",
        "Switch",
        lambda qs, v: qs.filter(Q(name=v.strip()) | Q(name__startswith=f"{v.strip()}:")),
    ),
    Filter("source", "Source", _field_is("source"), tuple(SwitchChange.Source.choices)),
]

SWITCH_COLUMNS = [
    Column("key", "Switch"),
    Column("label", "Name", csv=lambda r: r["switch"].label),
    Column("scope", "Scope"),
    Column("current", "Current", csv=lambda r: r["current_display"]),
    Column("default", "Default", csv=lambda r: r["default_display"]),
    Column("is_default", "At default", csv=lambda r: "yes" if r["is_default"] else "no"),
    Column("last_changed_at", "Last change (UTC)", csv=lambda r: r["last"].at if r["last"] else None),
    Column(
        "last_change", "Old → new", csv=lambda r: f"{r['last_old']} → {r['last_new']}" if r["last"] else ""
    ),
    Column("last_by", "By", csv=lambda r: (_email(r["last"].actor) or "platform") if r["last"] else ""),
    Column("last_reason", "Reason", csv=lambda r: r["last"].reason if r["last"] else ""),
    Column(
        "who_may_change",
        "Who may change",
        csv=lambda r: "Super Admin" if r["switch"].permission == "manage_switches" else "Risk Manager",
    ),
]

# --- risk config and routing -------------------------------------------------------------------------

BREAKER_COLUMNS = [
    Column("kind", "Breaker"),
    Column("scope", "Scope"),
    Column("state", "State"),
    Column("reason", "Reason"),
    Column("tripped_at", "Tripped (UTC)"),
    Column("reset_rule", "Reset rule"),
]


def _cfg(name: str) -> Any:
    return lambda row: row.config[name]["value"]


ROUTING_ASSET_COLUMNS = [
    Column("asset", "Asset"),
    Column("mode", "Mode"),
    Column("normal_threshold", "Normal ≤ (USDC)", csv=_cfg("normal_threshold")),
    Column("betting_threshold", "Betting ≤ (USDC)", csv=_cfg("betting_threshold")),
    Column("hl_mode_exposure_threshold", "HL trigger (USD)", csv=_cfg("hl_mode_exposure_threshold")),
    Column(
        "betting_mode_exposure_threshold",
        "Betting trigger (USD)",
        csv=_cfg("betting_mode_exposure_threshold"),
    ),
    Column("exposure", "B-book exposure (USD)"),
    Column(
        "exposure_ratio",
        "vs HL trigger (%)",
        csv=lambda r: None if r.exposure_ratio is None else r.exposure_ratio * 100,
    ),
    Column("auto_switch_enabled", "Auto-switch", csv=lambda r: "on" if r.auto_switch_enabled else "off"),
    Column(
        "internalization_enabled", "Whitelist", csv=lambda r: "on" if r.internalization_enabled else "off"
    ),
    Column("force_hl", "Force-HL", csv=lambda r: " ".join(sorted(r.force_hl_reasons))),
    Column("hl_halted", "HL halt", csv=lambda r: (r.hl_halt_reason or "halted") if r.hl_halted else ""),
    Column("effect", "Effect now", csv=lambda r: getattr(r, "effect", "")),
]

MODE_LOG_COLUMNS = [
    Column("created_at", "Time (UTC)"),
    Column("asset", "Asset"),
    Column("from_mode", "From"),
    Column("to_mode", "To"),
    Column("trigger", "Trigger"),
    Column("operator", "By", csv=lambda s: _email(s.operator)),
    Column("reason", "Reason"),
    Column("net_exposure_at_switch", "Net exposure (USDC)"),
]

# --- money and staff ---------------------------------------------------------------------------------

ADJUSTMENT_COLUMNS = [
    Column("id", "Id"),
    Column("created_at", "Requested (UTC)"),
    Column("amount", "Amount (USDC)"),
    Column("reason", "Reason"),
    Column("requested_by", "Requested by", csv=lambda a: _email(a.requested_by)),
    Column("status", "Status"),
    Column("decided_by", "Decided by", csv=lambda a: _email(a.decided_by)),
    Column("decided_at", "Decided (UTC)"),
    Column("decision_note", "Decision note"),
]

RECON_LATEST_COLUMNS = [
    Column("dimension", "Dimension"),
    Column("subject", "Subject"),
    Column("status", "Status"),
    Column("expected", "Expected"),
    Column("actual", "Actual"),
    Column("deviation", "Deviation"),
    Column("rate", "Rate (%)", csv=lambda d: None if d["rate"] is None else d["rate"] * 100),
    Column("unit", "Unit"),
    Column("checked_at", "Checked (UTC)"),
]

STAFF_SESSION_COLUMNS = [
    Column("created_at", "Signed in (UTC)"),
    Column("ip", "IP"),
    Column("user_agent", "Browser"),
    Column("state", "State", csv=lambda s: "live" if s.live else ("ended" if s.ended_at else "expired")),
    Column("ended_at", "Ended (UTC)"),
    Column("ended_by", "Ended by", csv=lambda s: _email(s.ended_by)),
]

EXPOSURE_COLUMNS = [
    Column("asset", "Asset"),
    Column("mark", "Mark (USD)"),
    Column("net", "Net exposure (USD)"),
    Column("long", "Long (USD)"),
    Column("short", "Short (USD)"),
    Column("hedge", "Hedge (USD)"),
    Column(
        "coverage",
        "Hedge coverage (%)",
        csv=lambda r: None if r.coverage is None else r.coverage * 100,
    ),
    Column("bbook_upnl", "B-book uPnL (USDC)"),
    Column("positions", "Positions"),
]

CONFIG_COLUMNS = [
    Column("scope", "Scope"),
    Column("section", "Section"),
    Column("name", "Setting"),
    Column("label", "Label"),
    Column("value", "Current"),
    Column("unit", "Unit"),
    Column("default", "Default"),
    Column("effect", "Effect"),
    Column(
        "changed_at", "Last change (UTC)", csv=lambda r: r["changed"].created_at if r["changed"] else None
    ),
    Column("changed_by", "By", csv=lambda r: r["changed"].actor_label if r["changed"] else ""),
]
