"""Which user and channels a domain event concerns, and what the user stream says about it.

Orders, fills, liquidations, funding, deposits and withdrawals come from the event itself (the order
event carries the order's state at that change, written by the database trigger on ``trading_order``;
fills are read by id). Positions and balances are not emitted at write time: after an event that moves
them, the fan-out reads the user's account once (``account_view``, the same as ``GET /account``) and
sends the touched positions and the account summary. That keeps the order path's writes unchanged, and
the state sent is always a whole, current state — a client sets it rather than adds it up, so a late
or repeated one never corrupts what it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.api_output import BuiltOnce
from core.events.services import Event
from trading.account import account_view
from trading.api.orders import AccountOutput, FillOutput, PositionOutput
from trading.models import Fill, Position

CHANNELS = ("orders", "fills", "positions", "balances", "liquidations", "funding", "deposits", "withdrawals")
# channels with a snapshot on subscribe (the others start with an empty list)
SNAPSHOT_CHANNELS = ("orders", "positions", "balances")

WALLET_TOPICS = {
    "wallets.deposit_credited": ("deposits", "credited"),
    "wallets.withdrawal_requested": ("withdrawals", "requested"),
    "wallets.withdrawal_completed": ("withdrawals", "completed"),
    "wallets.withdrawal_refunded": ("withdrawals", "refunded"),
}
TOPICS = frozenset({"trading.order", "trading.fill", "trading.funding", "user.liquidation", *WALLET_TOPICS})

Items = list[tuple[str, Any]]


class PositionData(BuiltOnce, PositionOutput):
    """A position as the API shows it, with the fields built once (the fan-out sends many)."""


class BalancesData(BuiltOnce, AccountOutput):
    """The account summary as the API shows it, without its positions (they have their own channel)."""

    positions = None  # type: ignore[assignment]


def user_of(event: Event) -> int | None:
    uid = event.payload.get("user_id") if isinstance(event.payload, dict) else None
    if uid is None and event.aggregate.startswith("user:"):
        uid = event.aggregate.split(":", 1)[1]
    try:
        return int(uid) if uid is not None else None
    except (TypeError, ValueError):
        return None


@dataclass
class Plan:
    """What one domain event gives the user stream: its own frames per user (sent at once), and the
    users whose account it moved with the positions it touched (their positions and balances frames
    follow, from one read of the account each)."""

    primary: dict[int, Items] = field(default_factory=dict)
    accounts: dict[int, dict[int, str]] = field(default_factory=dict)


# a resting order's hold is taken or given back: the account summary moves without a fill
HOLD_STATUSES = frozenset({"OPEN", "CANCELLED", "EXPIRED"})


def plan_for(event: Event) -> Plan:
    payload = event.payload
    if event.topic == "trading.funding":
        return _funding(payload)
    uid = user_of(event)
    if uid is None:
        return Plan()
    if event.topic == "trading.order":
        data = {k: v for k, v in payload.items() if k != "user_id"}
        moved: dict[int, dict[int, str]] = (
            {uid: {}} if data.get("type") == "LIMIT" and data.get("status") in HOLD_STATUSES else {}
        )
        return Plan({uid: [("orders", data)]}, moved)
    if event.topic == "trading.fill":
        fills = Fill.objects.filter(id__in=payload.get("fill_ids") or []).order_by("id")
        items: Items = [("fills", dict(row)) for row in FillOutput(fills, many=True).data]
        touched = {int(p["id"]): str(p["status"]) for p in payload.get("positions") or []}
        return Plan({uid: items}, {uid: touched})
    if event.topic == "user.liquidation":
        position_id = payload.get("position_id")
        touched = {int(position_id): str(Position.Status.LIQUIDATED)} if position_id else {}
        return Plan({uid: [("liquidations", payload)]}, {uid: touched})
    if event.topic in WALLET_TOPICS:
        channel, kind = WALLET_TOPICS[event.topic]
        return Plan({uid: [(channel, {"event": kind, **payload})]}, {uid: {}})
    return Plan()


def _funding(payload: dict[str, Any]) -> Plan:
    per_user: dict[int, list[dict[str, Any]]] = {}
    for row in payload.get("settlements") or []:
        per_user.setdefault(int(row["user_id"]), []).append(row)
    plan = Plan()
    for uid, rows in per_user.items():
        plan.primary[uid] = [
            ("funding", {"funding_time": payload.get("funding_time"), **row}) for row in rows
        ]
        plan.accounts[uid] = {int(r["position_id"]): str(Position.Status.OPEN) for r in rows}
    return plan


def account_items(user_id: int, touched: dict[int, str]) -> Items:
    """The touched positions (open ones as the API shows them; closed ones as their id and status) and
    the account summary, from one read of the account."""
    view = account_view(user_id)
    open_by_id = {int(p["id"]): p for p in view["positions"]}  # type: ignore[attr-defined]
    items: Items = []
    for position_id, status in sorted(touched.items()):
        row = open_by_id.get(position_id)
        if row is not None:
            items.append(("positions", {**PositionData(row).data, "status": Position.Status.OPEN}))
        else:
            closed = status if status != Position.Status.OPEN else Position.Status.CLOSED
            items.append(("positions", {"id": position_id, "status": closed, "size": "0"}))
    items.append(("balances", balances_data(view)))
    return items


def balances_data(view: dict[str, object]) -> dict[str, Any]:
    return dict(BalancesData(view).data)


def positions_data(view: dict[str, object]) -> list[dict[str, Any]]:
    return [{**PositionData(p).data, "status": Position.Status.OPEN} for p in view["positions"]]  # type: ignore[attr-defined]
