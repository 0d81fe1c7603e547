"""The platform's HL accounts: registering agents, syncing positions against HL, account health.

Production provides ``HL_TRADING_MASTER`` / ``HL_TRADING_AGENT_KEY`` (and ``HL_HEDGE_*``) in the
environment; the master approves the agent out of band. Locally (``make run``, tests) the sandbox's
pre-funded accounts are used: their masters approve fresh agents through the SDK exactly as on HL, and
the agent keys are stored encrypted in ``HLAccount``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings
from django.db import models, transaction
from django.db.models import Case, DecimalField, F, Sum, When
from django.utils import timezone
from eth_account import Account
from hyperliquid.exchange import Exchange

from core.accounts.crypto import encrypt
from core.alerts.services import alert_raise, alert_resolve_condition
from core.live import broadcast_on_commit
from core.money import ZERO
from routing.models import RoutingState
from routing.services import routing_hl_halt_set
from trading.models import HLAccount, HLAccountSnapshot, HLPositionSync, Order, Position, Source
from trading.venues.hl import HLGateway, gateway, meta_from_markets, reset_gateways
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, TransferKind

logger = logging.getLogger(__name__)

SANDBOX_ACCOUNT_INDEX = {"trading": 0, "hedge": 1}
# spec 05: margin ratio (account value / maintenance margin used) thresholds of both HL accounts
MARGIN_RATIO_ALERT = Decimal(3)  # < 300 %
MARGIN_RATIO_HALT = Decimal("1.5")  # < 150 %: halt new HL opens
SYNC_WARN_RATE = Decimal("0.0001")  # 0.01 %
SYNC_CRITICAL_RATE = Decimal("0.001")  # 0.1 %: fail closed (halt new HL opens for the asset)
# A resting order HL fills shows in HL's position before the user stream has booked it (milliseconds
# later): a difference seen on one reading is read again after this long before it counts
SYNC_SETTLE_S = 1.0


def hl_account_register(*, name: str, master_address: str, agent_key: str) -> HLAccount:
    agent = Account.from_key(agent_key)
    row, _ = HLAccount.objects.update_or_create(
        name=name,
        defaults={
            "master_address": master_address,
            "agent_address": agent.address,
            "agent_key_encrypted": encrypt(agent_key),
            "updated_at": timezone.now(),
        },
    )
    reset_gateways()
    return row


def hl_sandbox_accounts_setup(
    *, base_url: str | None = None, names: tuple[str, ...] = ("trading", "hedge")
) -> list[str]:
    """Local development only: take the sandbox's well-known funded accounts as masters and approve a
    fresh agent for each through the official SDK. Refuses anything but a loopback HL URL."""

    url = (base_url or settings.HL_API_URL).rstrip("/")
    if not url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        raise RuntimeError("sandbox accounts are only for a local simulator")
    accounts = requests.get(f"{url}/control/accounts", timeout=5).json()
    done = []
    for name in names:
        master = Account.from_key(accounts[SANDBOX_ACCOUNT_INDEX[name]]["private_key"])
        exchange = Exchange(
            master, url, meta=meta_from_markets(), spot_meta={"universe": [], "tokens": []}, timeout=10
        )  # type: ignore[arg-type]
        result, agent_key = exchange.approve_agent(f"xbit-{name}")
        if result.get("status") != "ok":
            raise RuntimeError(f"approving the {name} agent failed: {result}")
        hl_account_register(name=name, master_address=master.address, agent_key=agent_key)
        done.append(name)
    return done


HL_CAPITAL_KINDS = {"trading": "hl_trading_capital", "hedge": "hl_hedge_capital"}


def hl_capital_book(*, name: str, key: str) -> Decimal:
    """Book what the HL account holds now (HL's ``marginSummary.accountValue``) as capital the platform
    injected into it: equity → ``hl_<name>_capital``, as an operator does when funding a fresh account.
    The amount is read from HL, never assumed, so the ``hl_account_value`` reconciliation starts level.

    Idempotent by ``key`` (a replay books nothing more and returns the first amount). Call it before the
    account trades: afterwards its value includes P&L, which is not capital."""
    gw = gateway(name)
    if gw is None:
        raise RuntimeError(f"HL account {name!r} is not configured")
    value = Decimal(str(gw.user_state()["marginSummary"]["accountValue"]))
    posting = ledger_post(
        key=key,
        transfers=[
            TransferSpec(
                debit=AccountRef.platform(AccountKind.EQUITY),
                credit=AccountRef.platform(HL_CAPITAL_KINDS[name]),
                amount=value,
                kind=TransferKind.CAPITAL,
                ref_type="hl_account",
                ref_id=name,
            )
        ],
    )
    return posting.transfers[0].amount if posting.transfers else value


def seed_hl_accounts_demo(command: Any) -> None:
    if HLAccount.objects.filter(name="trading").exists():
        command.stdout.write("  HL accounts: already configured")
        return
    try:
        names = hl_sandbox_accounts_setup()
        # the capital is what the simulated HL credited each account, read back from it
        booked = {name: hl_capital_book(name=name, key=f"demo:capital:hl:{name}") for name in names}
    except (requests.RequestException, RuntimeError, KeyError, IndexError) as exc:
        command.stdout.write(
            f"  HL accounts: sandbox not reachable ({type(exc).__name__}); HL routing stays off"
        )
        return
    capital = ", ".join(f"{name} {amount:,.2f} USDC" for name, amount in booked.items())
    command.stdout.write(
        f"  HL accounts: {', '.join(names)} agents approved on the sandbox; capital {capital}"
    )


# ------------------------------------------------------------------------------------------ position sync


@dataclass(frozen=True)
class SyncRow:
    asset: str
    expected: Decimal
    actual: Decimal
    status: str


def expected_positions() -> dict[str, Decimal]:
    """Σ users' HYPERLIQUID positions per asset, signed (long +)."""
    signed = Case(
        When(direction=Position.Direction.LONG, then=F("size")),
        default=-F("size"),
        output_field=DecimalField(max_digits=28, decimal_places=8),
    )
    rows = (
        Position.objects.filter(source=Source.HYPERLIQUID, status=Position.Status.OPEN)
        .values("asset")
        .annotate(total=Sum(signed))
    )
    return {row["asset"]: row["total"] for row in rows}


def hl_positions(state: dict[str, Any]) -> dict[str, Decimal]:
    return {p["position"]["coin"]: Decimal(p["position"]["szi"]) for p in state.get("assetPositions", [])}


def positions_sync(*, gw: HLGateway | None = None) -> list[SyncRow]:
    """Compare our book with what HL holds for the trading account (HL is the source of truth). A
    mismatch alerts; above 0.1 % new HL opens for the asset halt until it clears (fail closed)."""

    gw = gw or gateway("trading")
    if gw is None:
        return []
    # Our book and HL's are read at slightly different moments: an order HL has filled but we have not
    # applied yet looks like a mismatch. Such assets are compared only when nothing is in flight, and a
    # mismatch must be seen twice in a row before it fails closed (a real one persists; a race does not).
    ours, state, theirs, busy = _read_both(gw)
    if any(
        _sync_rate(ours.get(asset, ZERO), theirs.get(asset, ZERO)) > SYNC_WARN_RATE
        for asset in (set(ours) | set(theirs)) - busy
    ):
        # a fill on a resting order is on HL before the user stream has booked it in ours; a real
        # difference is still there a moment later
        time.sleep(SYNC_SETTLE_S)
        ours, state, theirs, busy = _read_both(gw)
    rows = []
    now = timezone.now()
    with transaction.atomic():
        for asset in sorted(set(ours) | set(theirs)):
            if asset in busy:
                continue
            expected, actual = ours.get(asset, ZERO), theirs.get(asset, ZERO)
            deviation = actual - expected
            rate = _sync_rate(expected, actual)
            status = (
                "OK" if rate <= SYNC_WARN_RATE else ("WARN" if rate <= SYNC_CRITICAL_RATE else "CRITICAL")
            )
            if status == "CRITICAL" and not _mismatch_persisted(asset):
                status = "WARN"  # first sighting: confirm on the next run before halting HL opens
            HLPositionSync.objects.create(
                asset=asset,
                expected=expected,
                actual=actual,
                deviation=deviation,
                deviation_rate=rate.quantize(Decimal("0.00000001")),
                status=status,
                created_at=now,
            )
            rows.append(SyncRow(asset, expected, actual, status))
            rule = "hl.position_mismatch"
            if status == "OK":
                alert_resolve_condition(rule=rule, subject=asset)
                if _halted_by_sync(asset):
                    routing_hl_halt_set(asset=asset, halted=False, reason="")
            else:
                alert_raise(
                    rule=rule,
                    subject=asset,
                    severity="P0" if status == "CRITICAL" else "P1",
                    message=f"{asset}: users hold {expected}, HL trading account holds {actual}",
                    details={"expected": str(expected), "actual": str(actual), "rate": str(rate)},
                )
                if status == "CRITICAL":
                    routing_hl_halt_set(asset=asset, halted=True, reason="position sync mismatch")
    hl_account_snapshot(gw, state)
    return rows


def _sync_rate(expected: Decimal, actual: Decimal) -> Decimal:
    """|actual − expected| relative to the larger of the two (0 when both are flat)."""
    base = max(abs(expected), abs(actual))
    return abs(actual - expected) / base if base else ZERO


def _read_both(
    gw: HLGateway,
) -> tuple[dict[str, Decimal], dict[str, Any], dict[str, Decimal], set[str]]:
    """Our book, HL's state and positions, and the assets with an HL order in flight around the reads."""
    busy_before = _in_flight_assets()
    ours = expected_positions()
    state = gw.user_state()
    theirs = hl_positions(state)
    return ours, state, theirs, busy_before | _in_flight_assets()


def _in_flight_assets() -> set[str]:
    """Assets with HL orders whose outcome is still being applied (sent, answer not yet booked)."""

    recent = timezone.now() - timedelta(seconds=2)
    return set(
        Order.objects.filter(route=Source.HYPERLIQUID)
        .filter(models.Q(status=Order.Status.ACCEPTED) | models.Q(updated_at__gte=recent))
        .values_list("asset", flat=True)
        .distinct()
    )


def _mismatch_persisted(asset: str) -> bool:
    last = (
        HLPositionSync.objects.filter(asset=asset)
        .order_by("-created_at")
        .values_list("status", flat=True)
        .first()
    )
    return last in ("WARN", "CRITICAL")


def _halted_by_sync(asset: str) -> bool:
    return RoutingState.objects.filter(
        asset=asset, hl_halted=True, hl_halt_reason="position sync mismatch"
    ).exists()


def margin_ratio(state: dict[str, Any]) -> Decimal | None:
    value = Decimal(state.get("marginSummary", {}).get("accountValue", "0"))
    mm = Decimal(state.get("crossMaintenanceMarginUsed", "0"))
    return (value / mm).quantize(Decimal("0.0001")) if mm > 0 else None


def hl_account_snapshot(gw: HLGateway, state: dict[str, Any]) -> HLAccountSnapshot:
    summary = state.get("marginSummary", {})
    try:
        limits = gw.rate_limit()
    except Exception:  # the budget is informative; a failed query must not stop the sync
        limits = {}
    snapshot = HLAccountSnapshot.objects.create(
        account=gw.name,
        account_value=Decimal(summary.get("accountValue", "0")),
        total_margin_used=Decimal(summary.get("totalMarginUsed", "0")),
        maintenance_margin_used=Decimal(state.get("crossMaintenanceMarginUsed", "0")),
        withdrawable=Decimal(state.get("withdrawable", "0")),
        total_notional=Decimal(summary.get("totalNtlPos", "0")),
        margin_ratio=margin_ratio(state),
        positions=state.get("assetPositions", []),
        rate_limit=limits,
    )
    _health_verdict(gw.name, snapshot)
    # the console's live HL account figures (hedge page), sent once the snapshot is committed
    broadcast_on_commit(
        "hl_accounts",
        {
            "account": snapshot.account,
            "margin_ratio": snapshot.margin_ratio,
            "account_value": snapshot.account_value,
            "maintenance_margin_used": snapshot.maintenance_margin_used,
            "withdrawable": snapshot.withdrawable,
            "at": snapshot.created_at.timestamp(),
        },
    )
    return snapshot


def _health_verdict(name: str, snapshot: HLAccountSnapshot) -> None:
    """Spec 05 thresholds for an HL account: < 300 % alert, < 150 % halt new HL opens."""

    ratio = snapshot.margin_ratio
    rule = f"hl.{name}.margin_ratio"
    if ratio is not None and ratio < MARGIN_RATIO_HALT:
        alert_raise(
            rule=rule,
            subject=name,
            severity="P0",
            message=f"HL {name} account margin ratio {ratio:.0%}: new HL opens halted",
        )
        if name == "trading":
            routing_hl_halt_set(asset="*", halted=True, reason="trading account margin ratio below 150%")
    elif ratio is not None and ratio < MARGIN_RATIO_ALERT:
        alert_raise(
            rule=rule,
            subject=name,
            severity="P1",
            message=f"HL {name} account margin ratio {ratio:.0%}: top up",
        )
    else:
        alert_resolve_condition(rule=rule, subject=name)
        if (
            name == "trading"
            and RoutingState.objects.filter(
                asset="*", hl_halted=True, hl_halt_reason__startswith="trading account margin"
            ).exists()
        ):
            routing_hl_halt_set(asset="*", halted=False)


def account_health(name: str = "trading") -> HLAccountSnapshot | None:
    gw = gateway(name)
    if gw is None:
        return None
    return hl_account_snapshot(gw, gw.user_state())


def startup_resync() -> tuple[bool, str]:
    """Restart recovery's HL step (``manage.py platform_ready``): re-read both HL accounts (positions vs
    our book, health). HL unreachable keeps the gate closed: HL is the source of truth for what it holds."""
    done = []
    if gateway("trading") is not None:
        positions_sync()
        done.append("trading")
    if gateway("hedge") is not None:
        account_health("hedge")
        done.append("hedge")
    return True, ("resynced " + ", ".join(done)) if done else "no HL account configured"
