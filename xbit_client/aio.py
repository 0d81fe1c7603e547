"""``AsyncClient``: the trader REST API over ``httpx.AsyncClient`` (asyncio). Same methods as ``Client``."""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from xbit_client import endpoints as ep
from xbit_client.core import Call, Core
from xbit_client.endpoints import Number
from xbit_client.errors import XbitApiError, XbitTransportError
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
    TokenPair,
    Tpsl,
    Wallet,
    Withdrawal,
    WithdrawalAddress,
)

T = TypeVar("T")


class AsyncClient:
    """Asyncio client. Authenticate with an API key (``api_key`` + ``api_secret``: every request
    HMAC-signed) or as a user (``email`` + ``password``, or tokens: JWT refreshed before it expires and
    once on a 401 INVALID_TOKEN / TOKEN_EXPIRED). Refusals raise ``XbitApiError``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        recv_window_ms: int | None = None,
        email: str | None = None,
        password: str | None = None,
        otp_code: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 2,
        backoff_s: float = 0.25,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.core = Core(
            base_url,
            api_key=api_key,
            api_secret=api_secret,
            recv_window_ms=recv_window_ms,
            email=email,
            password=password,
            otp_code=otp_code,
            access_token=access_token,
            refresh_token=refresh_token,
            max_retries=max_retries,
            backoff_s=backoff_s,
        )
        self.http = http or httpx.AsyncClient(timeout=timeout, headers={"User-Agent": "xbit-client"})
        self._renew_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # ---- transport -----------------------------------------------------------------------------------

    async def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            prepared = self.core.prepare(call)
            try:
                response = await self.http.request(
                    prepared.method, prepared.url, headers=prepared.headers, content=prepared.content
                )
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                delay = self.core.retry_delay(call, attempt, None, sent=sent)
                if delay is None:
                    raise XbitTransportError(
                        f"{call.method} {call.path}: {type(exc).__name__}: {exc}"
                    ) from exc
            else:
                try:
                    return self.core.answer(call, response.status_code, response.content)
                except XbitApiError as error:
                    delay = self.core.retry_delay(call, attempt, error, sent=True)
                    if delay is None:
                        raise
            attempt += 1
            await asyncio.sleep(delay)

    async def _run(self, call: Call[T]) -> T:
        tokens = self.core.tokens
        if not call.signed or tokens is None:
            return await self._send(call)
        await self._ensure_token()
        try:
            return await self._send(call)
        except XbitApiError as error:
            if not self.core.token_retry(error, already_refreshed=False):
                raise
        await self._renew(force=True)
        return await self._send(call)

    async def _ensure_token(self) -> None:
        tokens = self.core.tokens
        if tokens is not None and not tokens.fresh():
            await self._renew(force=False)

    async def _renew(self, *, force: bool) -> None:
        tokens = self.core.tokens
        assert tokens is not None
        async with self._renew_lock:
            if not force and tokens.fresh():
                return  # another thread renewed it meanwhile
            pair: TokenPair | None = None
            if tokens.refresh:
                try:
                    pair = await self._send(tokens.refresh_call())
                except XbitApiError as error:
                    if error.status != 401 or not tokens.can_login:
                        raise
            if pair is None:
                if not tokens.can_login:
                    raise XbitApiError(401, "INVALID_TOKEN", "No valid token and no credentials to sign in.")
                pair = await self._send(tokens.login_call())
            tokens.take(pair)

    # ---- authentication ------------------------------------------------------------------------------

    async def login(self, email: str, password: str, otp_code: str | None = None) -> TokenPair:
        """Sign in with email and password; the client then uses (and refreshes) the tokens."""
        self.core.use_tokens(TokenPair("", "", ""), email=email, password=password)
        assert self.core.tokens is not None
        self.core.tokens.otp_code = otp_code
        pair = await self._send(self.core.tokens.login_call())
        self.core.tokens.take(pair)
        return pair

    async def refresh(self) -> TokenPair:
        """Rotate the token pair now (normally automatic)."""
        await self._renew(force=True)
        tokens = self.core.tokens
        assert tokens is not None
        return TokenPair(tokens.access, tokens.refresh, "Bearer")

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        """Any other endpoint under ``/api/v1`` (signed like the others); the JSON answer as is."""
        retryable = method.upper() in ("GET", "HEAD")
        return await self._run(
            Call(method.upper(), path, lambda data: data, params=params, body=body, retryable=retryable)
        )

    # ---- account and keys --------------------------------------------------------------------------

    async def me(self) -> Me:
        return await self._run(ep.me())

    async def api_keys(self) -> list[ApiKeyInfo]:
        return await self._run(ep.api_keys())

    async def create_api_key(
        self,
        permissions: list[str],
        label: str = "",
        ip_allowlist: list[str] | None = None,
        otp_code: str | None = None,
    ) -> ApiKeyInfo:
        """Only from a signed-in (JWT) session: a key cannot mint keys. ``secret`` is shown once."""
        return await self._run(ep.create_api_key(permissions, label, ip_allowlist, otp_code))

    async def revoke_api_key(self, key_id: str) -> ApiKeyInfo:
        return await self._run(ep.revoke_api_key(key_id))

    # ---- markets -----------------------------------------------------------------------------------

    async def markets(self, include_delisted: bool = False) -> list[Market]:
        return await self._run(ep.markets(include_delisted))

    async def market(self, symbol: str) -> Market:
        return await self._run(ep.market(symbol))

    # ---- trading -----------------------------------------------------------------------------------

    async def account(self) -> Account:
        return await self._run(ep.account())

    async def place_order(
        self,
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
    ) -> Order:
        """Place an order; without ``client_order_id`` one is generated so a retry cannot place twice."""
        return await self._run(
            ep.place_order(
                symbol,
                side,
                type,
                size,
                limit_price=limit_price,
                leverage=leverage,
                margin_mode=margin_mode,
                reduce_only=reduce_only,
                time_in_force=time_in_force,
                slippage_bps=slippage_bps,
                client_order_id=client_order_id,
                position_id=position_id,
            )
        )

    async def orders(
        self,
        *,
        symbol: str | None = None,
        status: str | list[str] | None = None,
        client_order_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Order]:
        return await self._run(
            ep.orders(
                symbol=symbol,
                status=status,
                client_order_id=client_order_id,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )
        )

    async def order(self, order_id: int) -> Order:
        return await self._run(ep.order(order_id))

    async def cancel_order(self, order_id: int) -> Order:
        return await self._run(ep.cancel_order(order_id))

    async def positions(self, symbol: str | None = None) -> list[Position]:
        return await self._run(ep.positions(symbol))

    async def close_position(
        self, position_id: int, size: Number | None = None, *, client_order_id: str | None = None
    ) -> Order:
        """Close all of the position (or ``size`` of it) at market; returns the closing order."""
        return await self._run(ep.close_position(position_id, size, client_order_id=client_order_id))

    async def adjust_margin(
        self, position_id: int, amount: Number, *, idempotency_key: str | None = None
    ) -> Position:
        return await self._run(ep.adjust_margin(position_id, amount, idempotency_key=idempotency_key))

    async def set_leverage(self, symbol: str, margin_mode: str, leverage: int) -> LeverageSetting:
        return await self._run(ep.set_leverage(symbol, margin_mode, leverage))

    async def fills(
        self,
        *,
        symbol: str | None = None,
        order_id: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Fill]:
        return await self._run(ep.fills(symbol=symbol, order_id=order_id, limit=limit, cursor=cursor))

    async def funding(
        self,
        *,
        symbol: str | None = None,
        position_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[FundingPayment]:
        """Funding payments, newest first (negative paid, positive received)."""
        return await self._run(
            ep.funding(
                symbol=symbol, position_id=position_id, since=since, until=until, limit=limit, cursor=cursor
            )
        )

    async def modify_order(
        self, order_id: int, *, size: Number | None = None, limit_price: Number | None = None
    ) -> Order:
        """Change an open limit order's price and/or size (HYPERLIQUID: replaced, ``replaces`` set)."""
        return await self._run(ep.modify_order(order_id, size=size, limit_price=limit_price))

    async def cancel_all(self, symbol: str | None = None) -> CancelAllResult:
        return await self._run(ep.cancel_all(symbol))

    async def place_orders(self, orders: list[dict[str, Any]]) -> list[BulkResult]:
        """Batch placement (up to 20): one result per entry, in order."""
        return await self._run(ep.place_orders(orders))

    async def cancel_orders(self, order_ids: list[int]) -> list[BulkResult]:
        return await self._run(ep.cancel_orders(order_ids))

    async def schedule_cancel(self, at: datetime | int | None) -> ScheduledCancel:
        """Dead-man's switch: cancel all at ``at`` unless renewed; None clears it."""
        return await self._run(ep.schedule_cancel(at))

    async def scheduled_cancel(self) -> ScheduledCancel:
        return await self._run(ep.scheduled_cancel())

    async def add_tpsl(
        self,
        position_id: int,
        type: str,
        trigger_price: Number,
        *,
        size: Number | None = None,
        limit_price: Number | None = None,
    ) -> Tpsl:
        return await self._run(
            ep.add_tpsl(position_id, type, trigger_price, size=size, limit_price=limit_price)
        )

    async def tpsl_list(
        self,
        *,
        symbol: str | None = None,
        status: str | list[str] | None = None,
        position_id: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Tpsl]:
        return await self._run(
            ep.tpsl_list(symbol=symbol, status=status, position_id=position_id, limit=limit, cursor=cursor)
        )

    async def cancel_tpsl(self, tpsl_id: int) -> Tpsl:
        return await self._run(ep.cancel_tpsl(tpsl_id))

    async def place_algo_order(
        self,
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
    ) -> AlgoOrder:
        """A TWAP or size-split parent on Hyperliquid; a generated client_order_id makes it retry-safe."""
        return await self._run(
            ep.place_algo_order(
                type,
                symbol,
                side,
                size,
                duration_seconds=duration_seconds,
                slices=slices,
                randomize=randomize,
                max_child_size=max_child_size,
                leverage=leverage,
                margin_mode=margin_mode,
                slippage_bps=slippage_bps,
                client_order_id=client_order_id,
            )
        )

    async def algo_orders(self, *, limit: int | None = None, cursor: str | None = None) -> Page[AlgoOrder]:
        return await self._run(ep.algo_orders(limit=limit, cursor=cursor))

    async def algo_order(self, algo_id: int) -> AlgoOrder:
        """The parent with its children."""
        return await self._run(ep.algo_order(algo_id))

    async def cancel_algo_order(self, algo_id: int) -> AlgoOrder:
        return await self._run(ep.cancel_algo_order(algo_id))

    # ---- wallet ------------------------------------------------------------------------------------

    async def wallet(self) -> Wallet:
        return await self._run(ep.wallet())

    async def balance_logs(self, *, limit: int | None = None, cursor: str | None = None) -> Page[BalanceLog]:
        return await self._run(ep.balance_logs(limit=limit, cursor=cursor))

    async def deposit_addresses(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[DepositAddress]:
        return await self._run(ep.deposit_addresses(limit=limit, cursor=cursor))

    async def deposit_address(self, chain: str) -> DepositAddress:
        return await self._run(ep.deposit_address(chain))

    async def deposits(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Deposit]:
        return await self._run(ep.deposits(limit=limit, cursor=cursor))

    async def withdrawal_addresses(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[WithdrawalAddress]:
        return await self._run(ep.withdrawal_addresses(limit=limit, cursor=cursor))

    async def add_withdrawal_address(self, chain: str, address: str, label: str = "") -> WithdrawalAddress:
        return await self._run(ep.add_withdrawal_address(chain, address, label))

    async def delete_withdrawal_address(self, address_id: int) -> None:
        return await self._run(ep.delete_withdrawal_address(address_id))

    async def set_withdrawal_whitelist(self, enabled: bool, totp_code: str) -> bool:
        return await self._run(ep.set_withdrawal_whitelist(enabled, totp_code))

    async def withdrawals(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Withdrawal]:
        return await self._run(ep.withdrawals(limit=limit, cursor=cursor))

    async def request_withdrawal(
        self, chain: str, asset: str, address: str, amount: Number, totp_code: str
    ) -> Withdrawal:
        return await self._run(ep.request_withdrawal(chain, asset, address, amount, totp_code))

    async def withdrawal(self, withdrawal_id: int) -> Withdrawal:
        return await self._run(ep.withdrawal(withdrawal_id))

    async def cancel_withdrawal(self, withdrawal_id: int) -> Withdrawal:
        return await self._run(ep.cancel_withdrawal(withdrawal_id))

    async def access_token(self, force: bool = False) -> str:
        """A valid access token (refreshed or signed in as needed; ``force`` rotates it now) — what the
        user stream authenticates with."""
        if self.core.tokens is None:
            raise XbitApiError(401, "NOT_AUTHENTICATED", "This client has no user session.")
        if force:
            await self._renew(force=True)
        else:
            await self._ensure_token()
        return self.core.tokens.access
