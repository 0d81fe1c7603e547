"""Every trader REST operation as a ``Call``: path, parameters, body, answer type, retry safety.

``Client`` and ``AsyncClient`` expose each of these as a method of the same name and arguments."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from xbit_client.core import Call, cursor_of
from xbit_client.models import (
    Account,
    AlgoOrder,
    ApiKeyInfo,
    BalanceLog,
    BulkResult,
    CancelAllResult,
    Deposit,
    DepositAddress,
    Fill,
    FundingPayment,
    LeverageSetting,
    Market,
    Me,
    Order,
    Page,
    Position,
    ScheduledCancel,
    Tpsl,
    Wallet,
    Withdrawal,
    WithdrawalAddress,
)
from xbit_client.parsing import parse, parse_list

T = TypeVar("T")
Number = Decimal | str | int


def new_client_order_id() -> str:
    """A fresh client_order_id: sending it again returns the same order, so a placement can be retried."""
    return "xc-" + uuid.uuid4().hex


def _one(cls: type[T]) -> Callable[[Any], T]:
    return lambda data: parse(cls, data)


def _many(cls: type[T]) -> Callable[[Any], list[T]]:
    return lambda data: parse_list(cls, data)


def _page(cls: type[T]) -> Callable[[Any], Page[T]]:
    def read(data: Any) -> Page[T]:
        if isinstance(data, list):  # an unpaginated list
            return Page(parse_list(cls, data), None, None)
        return Page(
            parse_list(cls, data.get("results", [])),
            cursor_of(data.get("next")),
            cursor_of(data.get("previous")),
        )

    return read


def _results(data: Any) -> list[BulkResult]:
    return parse_list(BulkResult, data.get("results", []))


def _nothing(_: Any) -> None:
    return None


def _dec(value: Number | None) -> str | None:
    if value is None:
        return None
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _compact(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


# ---- account and keys ------------------------------------------------------------------------------


def me() -> Call[Me]:
    return Call("GET", "/me", _one(Me), retryable=True)


def api_keys() -> Call[list[ApiKeyInfo]]:
    return Call("GET", "/api-keys", _many(ApiKeyInfo), retryable=True)


def create_api_key(
    permissions: list[str],
    label: str = "",
    ip_allowlist: list[str] | None = None,
    otp_code: str | None = None,
) -> Call[ApiKeyInfo]:
    body = _compact(permissions=permissions, label=label, ip_allowlist=ip_allowlist, otp_code=otp_code)
    return Call("POST", "/api-keys", _one(ApiKeyInfo), body=body)


def revoke_api_key(key_id: str) -> Call[ApiKeyInfo]:
    return Call("POST", f"/api-keys/{key_id}/revoke", _one(ApiKeyInfo), body={}, retryable=True)


# ---- markets ---------------------------------------------------------------------------------------


def markets(include_delisted: bool = False) -> Call[list[Market]]:
    params = {"include_delisted": True} if include_delisted else None
    return Call("GET", "/markets", _many(Market), params=params, retryable=True)


def market(symbol: str) -> Call[Market]:
    return Call("GET", f"/markets/{symbol}", _one(Market), retryable=True)


# ---- trading ---------------------------------------------------------------------------------------


def account() -> Call[Account]:
    return Call("GET", "/account", _one(Account), retryable=True)


def place_order(
    symbol: str,
    side: str,
    type: str,
    size: Number,
    *,
    limit_price: Number | None = None,
    leverage: int | None = None,
    margin_mode: str | None = None,
    reduce_only: bool | None = None,
    time_in_force: str | None = None,
    slippage_bps: int | None = None,
    client_order_id: str | None = None,
    position_id: int | None = None,
) -> Call[Order]:
    """``client_order_id`` defaults to a fresh one, which makes the placement safe to retry."""
    body = _compact(
        symbol=symbol,
        side=side,
        type=type,
        size=_dec(size),
        limit_price=_dec(limit_price),
        leverage=leverage,
        margin_mode=margin_mode,
        reduce_only=reduce_only,
        time_in_force=time_in_force,
        slippage_bps=slippage_bps,
        client_order_id=client_order_id or new_client_order_id(),
        position_id=position_id,
    )
    return Call("POST", "/orders", _one(Order), body=body, retryable=True)


def orders(
    *,
    symbol: str | None = None,
    status: str | list[str] | None = None,
    client_order_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[Order]]:
    if isinstance(status, list):
        status = ",".join(status)
    params = _compact(
        symbol=symbol,
        status=status,
        client_order_id=client_order_id,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return Call("GET", "/orders", _page(Order), params=params, retryable=True)


def order(order_id: int) -> Call[Order]:
    return Call("GET", f"/orders/{int(order_id)}", _one(Order), retryable=True)


def cancel_order(order_id: int) -> Call[Order]:
    """Cancelling an order already cancelled answers it again, so a cancel is safe to retry."""
    return Call("POST", f"/orders/{int(order_id)}/cancel", _one(Order), body={}, retryable=True)


def positions(symbol: str | None = None) -> Call[list[Position]]:
    return Call("GET", "/positions", _many(Position), params=_compact(symbol=symbol), retryable=True)


def close_position(
    position_id: int, size: Number | None = None, *, client_order_id: str | None = None
) -> Call[Order]:
    body = _compact(size=_dec(size), client_order_id=client_order_id or new_client_order_id())
    return Call("POST", f"/positions/{int(position_id)}/close", _one(Order), body=body, retryable=True)


def adjust_margin(position_id: int, amount: Number, *, idempotency_key: str | None = None) -> Call[Position]:
    """Positive adds isolated margin, negative removes it."""
    body = {"amount": _dec(amount), "idempotency_key": idempotency_key or uuid.uuid4().hex}
    return Call("POST", f"/positions/{int(position_id)}/margin", _one(Position), body=body, retryable=True)


def set_leverage(symbol: str, margin_mode: str, leverage: int) -> Call[LeverageSetting]:
    body = {"symbol": symbol, "margin_mode": margin_mode, "leverage": leverage}
    return Call("POST", "/leverage", _one(LeverageSetting), body=body, retryable=True)


def fills(
    *,
    symbol: str | None = None,
    order_id: int | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[Fill]]:
    params = _compact(symbol=symbol, order_id=order_id, limit=limit, cursor=cursor)
    return Call("GET", "/fills", _page(Fill), params=params, retryable=True)


def funding(
    *,
    symbol: str | None = None,
    position_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[FundingPayment]]:
    params = _compact(
        symbol=symbol, position_id=position_id, since=since, until=until, limit=limit, cursor=cursor
    )
    return Call("GET", "/funding", _page(FundingPayment), params=params, retryable=True)


def modify_order(
    order_id: int, *, size: Number | None = None, limit_price: Number | None = None
) -> Call[Order]:
    """Change an open limit order's price and/or size (a HYPERLIQUID order is replaced: a new id, and
    ``replaces`` names the old one). Repeating it answers the same result."""
    body = _compact(size=_dec(size), limit_price=_dec(limit_price))
    return Call("POST", f"/orders/{int(order_id)}/modify", _one(Order), body=body, retryable=True)


def cancel_all(symbol: str | None = None) -> Call[CancelAllResult]:
    """Cancel every open order (of ``symbol``) and every live TP/SL trigger. Safe to repeat."""
    return Call(
        "POST", "/orders/cancel-all", _one(CancelAllResult), body=_compact(symbol=symbol), retryable=True
    )


def place_orders(orders: list[dict[str, Any]]) -> Call[list[BulkResult]]:
    """Up to 20 orders, each placed on its own: one result per entry. Each entry is a placement's
    fields (``symbol``, ``side``, ``type``, ``size``, …); entries without a ``client_order_id`` get one,
    which makes the batch safe to retry."""
    entries = []
    for entry in orders:
        entry = {k: (_dec(v) if isinstance(v, Decimal) else v) for k, v in entry.items() if v is not None}
        entry.setdefault("client_order_id", new_client_order_id())
        entries.append(entry)
    return Call("POST", "/orders/batch", _results, body={"orders": entries}, retryable=True)


def cancel_orders(order_ids: list[int]) -> Call[list[BulkResult]]:
    body = {"order_ids": [int(i) for i in order_ids]}
    return Call("POST", "/orders/batch-cancel", _results, body=body, retryable=True)


def schedule_cancel(at: datetime | int | None) -> Call[ScheduledCancel]:
    """The dead-man's switch: cancel all at ``at`` (an aware datetime or epoch ms) unless renewed;
    None clears it."""
    value: str | int | None = at.isoformat() if isinstance(at, datetime) else at
    return Call(
        "POST", "/orders/schedule-cancel", _one(ScheduledCancel), body={"time": value}, retryable=True
    )


def scheduled_cancel() -> Call[ScheduledCancel]:
    return Call("GET", "/orders/schedule-cancel", _one(ScheduledCancel), retryable=True)


def add_tpsl(
    position_id: int,
    type: str,
    trigger_price: Number,
    *,
    size: Number | None = None,
    limit_price: Number | None = None,
) -> Call[Tpsl]:
    """A take-profit (``TAKE_PROFIT``) or stop-loss (``STOP_LOSS``) on the mark for an open position."""
    body = _compact(
        type=type, trigger_price=_dec(trigger_price), size=_dec(size), limit_price=_dec(limit_price)
    )
    return Call("POST", f"/positions/{int(position_id)}/tpsl", _one(Tpsl), body=body)


def tpsl_list(
    *,
    symbol: str | None = None,
    status: str | list[str] | None = None,
    position_id: int | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[Tpsl]]:
    if isinstance(status, list):
        status = ",".join(status)
    params = _compact(symbol=symbol, status=status, position_id=position_id, limit=limit, cursor=cursor)
    return Call("GET", "/tpsl", _page(Tpsl), params=params, retryable=True)


def cancel_tpsl(tpsl_id: int) -> Call[Tpsl]:
    return Call("POST", f"/tpsl/{int(tpsl_id)}/cancel", _one(Tpsl), body={})


def place_algo_order(
    type: str,
    symbol: str,
    side: str,
    size: Number,
    *,
    duration_seconds: int | None = None,
    slices: int | None = None,
    randomize: bool | None = None,
    max_child_size: Number | None = None,
    leverage: int | None = None,
    margin_mode: str | None = None,
    slippage_bps: int | None = None,
    client_order_id: str | None = None,
) -> Call[AlgoOrder]:
    """A TWAP (``duration_seconds``) or a size split (``max_child_size``) executed on Hyperliquid."""
    body = _compact(
        type=type,
        symbol=symbol,
        side=side,
        size=_dec(size),
        duration_seconds=duration_seconds,
        slices=slices,
        randomize=randomize,
        max_child_size=_dec(max_child_size),
        leverage=leverage,
        margin_mode=margin_mode,
        slippage_bps=slippage_bps,
        client_order_id=client_order_id or new_client_order_id(),
    )
    return Call("POST", "/algo-orders", _one(AlgoOrder), body=body, retryable=True)


def algo_orders(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[AlgoOrder]]:
    return Call(
        "GET", "/algo-orders", _page(AlgoOrder), params=_compact(limit=limit, cursor=cursor), retryable=True
    )


def algo_order(algo_id: int) -> Call[AlgoOrder]:
    return Call("GET", f"/algo-orders/{int(algo_id)}", _one(AlgoOrder), retryable=True)


def cancel_algo_order(algo_id: int) -> Call[AlgoOrder]:
    return Call("POST", f"/algo-orders/{int(algo_id)}/cancel", _one(AlgoOrder), body={})


# ---- wallet ----------------------------------------------------------------------------------------


def wallet() -> Call[Wallet]:
    return Call("GET", "/wallet", _one(Wallet), retryable=True)


def balance_logs(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[BalanceLog]]:
    return Call(
        "GET", "/balance-logs", _page(BalanceLog), params=_compact(limit=limit, cursor=cursor), retryable=True
    )


def deposit_addresses(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[DepositAddress]]:
    params = _compact(limit=limit, cursor=cursor)
    return Call("GET", "/deposit-addresses", _page(DepositAddress), params=params, retryable=True)


def deposit_address(chain: str) -> Call[DepositAddress]:
    """The chain's deposit address, created on first ask (get-or-create on the server)."""
    return Call("POST", "/deposit-addresses", _one(DepositAddress), body={"chain": chain}, retryable=True)


def deposits(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[Deposit]]:
    return Call(
        "GET", "/deposits", _page(Deposit), params=_compact(limit=limit, cursor=cursor), retryable=True
    )


def withdrawal_addresses(
    *, limit: int | None = None, cursor: str | None = None
) -> Call[Page[WithdrawalAddress]]:
    params = _compact(limit=limit, cursor=cursor)
    return Call("GET", "/withdrawal-addresses", _page(WithdrawalAddress), params=params, retryable=True)


def add_withdrawal_address(chain: str, address: str, label: str = "") -> Call[WithdrawalAddress]:
    body = {"chain": chain, "address": address, "label": label}
    return Call("POST", "/withdrawal-addresses", _one(WithdrawalAddress), body=body)


def delete_withdrawal_address(address_id: int) -> Call[None]:
    return Call("DELETE", f"/withdrawal-addresses/{int(address_id)}", _nothing, retryable=True)


def set_withdrawal_whitelist(enabled: bool, totp_code: str) -> Call[bool]:
    return Call(
        "POST",
        "/withdrawal-addresses/whitelist",
        lambda data: bool(data["whitelist_only"]),
        body={"enabled": enabled, "totp_code": totp_code},
    )


def withdrawals(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[Withdrawal]]:
    return Call(
        "GET", "/withdrawals", _page(Withdrawal), params=_compact(limit=limit, cursor=cursor), retryable=True
    )


def request_withdrawal(
    chain: str, asset: str, address: str, amount: Number, totp_code: str
) -> Call[Withdrawal]:
    """Creates a withdrawal waiting for its emailed confirmation. Never retried: a second one would be
    another withdrawal (the server refuses a duplicate with DUPLICATE_WITHDRAWAL)."""
    body = {
        "chain": chain,
        "asset": asset,
        "address": address,
        "amount": _dec(amount),
        "totp_code": totp_code,
    }
    return Call("POST", "/withdrawals", _one(Withdrawal), body=body)


def withdrawal(withdrawal_id: int) -> Call[Withdrawal]:
    return Call("GET", f"/withdrawals/{int(withdrawal_id)}", _one(Withdrawal), retryable=True)


def cancel_withdrawal(withdrawal_id: int) -> Call[Withdrawal]:
    return Call("POST", f"/withdrawals/{int(withdrawal_id)}/cancel", _one(Withdrawal), body={})
