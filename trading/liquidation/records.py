"""What one liquidation close did (:class:`LiquidationClose`), the events announcing it, and the small
facts every liquidation path shares (close sides, direction signs, a position's version)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from django.utils import timezone

from core.money import ZERO
from trading.models import Position

CLOSE_SIDE: dict[str, str] = {Position.Direction.LONG: "SELL", Position.Direction.SHORT: "BUY"}
SIGN: dict[str, int] = {Position.Direction.LONG: 1, Position.Direction.SHORT: -1}
OPEN_ORDER_STATUSES = ("NEW", "ACCEPTED", "OPEN", "PARTIALLY_FILLED")


@dataclass
class LiquidationClose:
    """What one position's liquidation did (risk records it as a LiquidationRecord)."""

    position_id: int
    user_id: int
    asset: str
    venue: str
    margin_mode: str
    direction: str
    trigger_price: Decimal
    close_price: Decimal
    size: Decimal
    margin_zeroed: Decimal = ZERO
    loss: Decimal = ZERO
    platform_share: Decimal = ZERO
    reserve_share: Decimal = ZERO
    bankrupt_amount: Decimal = ZERO
    xbit_pnl: Decimal = ZERO
    hl_pnl: Decimal | None = None
    drift_amount: Decimal = ZERO
    fee: Decimal = ZERO
    replayed: bool = False

    def as_event(self) -> dict[str, Any]:
        values = ((f.name, getattr(self, f.name)) for f in fields(self))  # flat: no deep copy (asdict)
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in values}

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> LiquidationClose:
        """The close back from :meth:`as_event` (a task's arguments)."""
        values = dict(data)
        for f in fields(cls):
            if f.type in ("Decimal", "Decimal | None") and values.get(f.name) is not None:
                values[f.name] = Decimal(values[f.name])
        return cls(**values)


def position_version(position: Position) -> int:
    """A position's version for trigger ids: its ``updated_at`` in µs (changes with every write)."""
    return int(position.updated_at.timestamp() * 1_000_000)


def close_events(close: LiquidationClose, *, trigger_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic, aggregate, payload) of the events announcing one liquidation close."""
    aggregate = f"user:{close.user_id}"
    payload = {"trigger_id": trigger_id, "at": timezone.now().isoformat(), **close.as_event()}
    user_payload = {
        "user_id": close.user_id,
        "position_id": close.position_id,
        "asset": close.asset,
        "direction": close.direction,
        "size": str(close.size),
        "trigger_price": str(close.trigger_price),
        "close_price": str(close.close_price),
        "loss": str(close.loss),
        "margin_mode": close.margin_mode,
        "venue": close.venue,
    }
    return [("trading.liquidation", aggregate, payload), ("user.liquidation", aggregate, user_payload)]
