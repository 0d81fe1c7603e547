"""Two end-to-end latencies of spec 08 through the real processes (issue #10):

(a) exposure push: an INTERNAL market fill committed by ``order_place`` (in this process) → outbox
    NOTIFY → ``run_relay`` → Redis stream → ``run_risk_consumer`` (exposure) → Channels group
    ``console.exposure`` (Redis pub/sub) → the ASGI web process (uvicorn, as the Procfile) → a
    websocket client subscribed to the ``exposure`` topic with a verified risk manager's session
    cookie, which timestamps every message as it arrives. Goal ≤ 250 ms p95 fill → browser.
(b) withdrawal time to broadcast: a 5,000 USDT withdrawal on TRON (below the 10k auto tier, no human)
    from the confirmation of its emailed link (``withdrawal_confirm``) until the TRON node (the
    sandbox's stand-in, through its own HTTP API) knows its transaction — tronpy builds it, the signer
    signs it, the node takes it; the send runs in a real Celery worker (queue ``wallets``) fed through
    the Redis broker. Goal ≤ 10 s.

Own database, own Redis database (streams, quotes, broker), own sandbox, own processes.

    python -m xbit_admin.devstack exec --test python bench/push_withdrawal.py [--fills 30] [--withdrawals 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    ROOT,
    free_port,
    git_rev,
    own_redis_db,
    percentiles,
    progress,
    save,
    setup_django,
    stop_process,
    wait_for_http,
)

DB = "xbit_bench_push"
SIZE = Decimal("0.01")


# ------------------------------------------------------------------------------ processes
def start_processes(port: int, urls: dict[str, str], logs: Path) -> dict[str, subprocess.Popen[bytes]]:
    """web, relay, risk consumer and a Celery worker as the Procfile runs them (without the respawn
    wrapper), on this benchmark's database and Redis database."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="bench.chains_settings",  # the test settings, TRON/Solana from here
        HL_API_URL=urls["hyperliquid"],
        TRON_RPC_URL=urls["tron"],
        SOLANA_RPC_URL=urls["solana"],
        DB_POOL_MAX="8",
        PYTHONUNBUFFERED="1",
    )
    py = sys.executable
    commands = {
        "web": [
            py,
            "-m",
            "uvicorn",
            "xbit_admin.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        + ["--no-access-log", "--ws", "websockets-sansio", "--log-level", "warning"],
        "relay": [py, "manage.py", "run_relay"],
        "risk": [py, "manage.py", "run_risk_consumer"],
        "worker": [py, "-m", "celery", "-A", "xbit_admin", "worker", "-Q", "critical,hedge,default,wallets"]
        + ["--concurrency", "2", "--without-gossip", "--without-mingle", "-l", "WARNING"],
    }
    procs = {}
    for name, cmd in commands.items():
        out = (logs / f"{name}.log").open("wb")
        procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=180, proc=procs["web"])
    except BaseException:
        for proc in procs.values():
            stop_process(proc)
        raise
    return procs


# ------------------------------------------------------------------------------ (a) exposure push
def staff_session_cookie() -> str:
    """A verified risk manager's session (password and TOTP steps done), as the browser holds it."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_backends
    from django.contrib.auth.models import Group
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from core.accounts.models import User
    from core.accounts.roles import Role

    user = User.objects.create_user("bench-risk@xbit.test", "bench-password-123", is_staff=True)
    user.groups.add(Group.objects.get(name=str(Role.RISK_MANAGER)))
    device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    backend = get_backends()[0]
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = f"{type(backend).__module__}.{type(backend).__qualname__}"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def fill_timed(user: Any) -> tuple[float, float, int]:
    """(started, committed) perf_counter stamps taken in the placing thread, and the order id."""
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    inp = order_input(
        asset="BTC", side="BUY", order_type="MARKET", size=str(SIZE), leverage=10, margin_mode="CROSS"
    )
    started = time.perf_counter()
    order = order_place(user=user, inp=inp)
    committed = time.perf_counter()  # order_place returns after COMMIT and the relay's NOTIFY
    assert order.status == "FILLED" and order.route == "INTERNAL", (order.status, order.error_message)
    return started, committed, order.pk


async def exposure_push(port: int, cookie: str, users: list[Any], fills: int, pause: float) -> dict[str, Any]:
    import aiohttp

    loop = asyncio.get_running_loop()
    placer = ThreadPoolExecutor(max_workers=1)  # one thread: the ORM's connection stays with it
    arrivals: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    async def read(ws: Any) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                arrivals.put_nowait((time.perf_counter(), message.json()))

    async def exposure_with(long_size: Decimal | None, timeout: float) -> tuple[float, dict[str, Any]] | None:
        """The next BTC exposure update (with this long size, when given). Other runs on the same Redis
        server publish on the same pub/sub channels: the size tells our updates apart."""
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                at, message = await asyncio.wait_for(arrivals.get(), left)
            except TimeoutError:
                return None
            data = message.get("data") or {}
            if message.get("topic") != "exposure" or data.get("asset") != "BTC":
                continue
            if long_size is None or Decimal(data["long_size"]) == long_size:
                return at, data
        return None

    headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{port}/ws/console/topics/", headers=headers) as ws,
    ):
        reader = asyncio.create_task(read(ws))
        await ws.send_json({"type": "subscribe", "topics": ["exposure"]})
        # warm-up: the consumer group exists and every process has served once
        warmed = 0
        for _ in range(5):
            await loop.run_in_executor(placer, fill_timed, users[0])
            warmed += await exposure_with(None, 10.0) is not None
        if not warmed:
            raise RuntimeError("no exposure update reached the websocket during the warm-up")
        await asyncio.sleep(1.0)
        while not arrivals.empty():
            arrivals.get_nowait()
        long_size = await loop.run_in_executor(placer, btc_long_size)
        commit_to_client, place_to_client, order_ids, missed = [], [], [], 0
        for i in range(fills):
            started, committed, order_id = await loop.run_in_executor(
                placer, fill_timed, users[i % len(users)]
            )
            order_ids.append(order_id)
            long_size += SIZE
            found = await exposure_with(long_size, 5.0)
            if found is None:
                missed += 1
                progress(f"fill {i}: no exposure update within 5 s")
                continue
            commit_to_client.append(found[0] - committed)
            place_to_client.append(found[0] - started)
            await asyncio.sleep(pause)
        reader.cancel()
    placer.shutdown()
    relay = await asyncio.to_thread(relay_lag, order_ids)
    return {
        "fills": fills,
        "missed": missed,
        "commit_to_client": percentiles(commit_to_client),
        "order_place_to_client": percentiles(place_to_client),
        "outbox_commit_to_stream": relay,
        "pause_between_fills_s": pause,
        "path": "order_place → outbox NOTIFY → run_relay → Redis stream → run_risk_consumer → "
        "channels_redis pub/sub → uvicorn (ASGI) → websocket client",
    }


def btc_long_size() -> Decimal:
    from risk.models import ExposureAsset

    return ExposureAsset.objects.get(asset="BTC").long_size


def relay_lag(order_ids: list[int]) -> dict[str, Any] | None:
    """The relay's share, from the outbox rows (created before the commit, published after it)."""
    from core.events.models import OutboxEvent

    rows = OutboxEvent.objects.filter(topic="trading.fill", payload__order_id__in=order_ids).values_list(
        "created_at", "published_at"
    )
    lags = [(p - c).total_seconds() for c, p in rows if p is not None]
    return percentiles(lags) if lags else None


# ------------------------------------------------------------------------------ (b) withdrawals
def totp_now(user: Any) -> str:
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user=user, confirmed=True)
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def tron_knows(tron_url: str, txid: str) -> bool:
    """The TRON node has the transaction (in its pending pool or in a block), asked as a client would."""
    for method in ("gettransactionfrompending", "gettransactionbyid"):
        answer = requests.post(f"{tron_url}/wallet/{method}", json={"value": txid}, timeout=5).json()
        if answer.get("txID") == txid:
            return True
    return False


def withdrawals(tron_url: str, n: int) -> dict[str, Any]:
    from django.conf import settings
    from django.core import mail
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from tronpy.keys import PrivateKey

    from core.accounts.models import User
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import Withdrawal
    from wallets.services import hot_wallet_key, withdrawal_confirm, withdrawal_request

    settings.CHAIN_ADAPTERS = {**settings.CHAIN_ADAPTERS, "TRON": "tron"}
    settings.TRON_RPC_URL = tron_url
    hot = hot_wallet_key("TRON").address  # the worker derives the same key from the same seed
    for asset, sun in (("USDT", 600_000 * 10**6), ("TRX", 100_000 * 10**6)):
        requests.post(
            f"{tron_url}/control/fund", json={"address": hot, "asset": asset, "amount": sun}, timeout=5
        ).raise_for_status()
    to_chain, server_side, tiers = [], [], set()
    for i in range(-1, n):  # -1: the worker's first task (imports, connections) is not counted
        user = User.objects.create_user(
            f"bench-wd-{i}@xbit.test", "bench-password-123", kyc_status="VERIFIED"
        )
        TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        ledger_post(
            key=f"bench-wd-funding:{user.pk}",
            transfers=[
                TransferSpec(
                    debit=AccountRef.platform("deposit_clearing", sub="TRON:USDT"),
                    credit=AccountRef.user(user.pk, "cash"),
                    amount=Decimal("6000"),
                    kind="deposit",
                )
            ],
        )
        secret = (0xBE7C4 + i + 2).to_bytes(32, "big")
        address = PrivateKey(secret).public_key.to_base58check_address()
        withdrawal_request(
            user=user, chain="TRON", asset="USDT", address=address, amount="5000", totp_code=totp_now(user)
        )
        link = re.search(r"token=([\w\-]+)", str(mail.outbox[-1].body))  # type: ignore[attr-defined]
        if link is None:
            raise RuntimeError("no confirmation link in the withdrawal email")
        token = link.group(1)
        started = time.perf_counter()
        withdrawal = withdrawal_confirm(token=token)  # commit → the send task on the broker
        tiers.add(str(withdrawal.tier))
        deadline = started + 30
        on_chain = None
        while on_chain is None and time.perf_counter() < deadline:
            tx_hash = Withdrawal.objects.filter(pk=withdrawal.pk).values_list("tx_hash", flat=True).first()
            if tx_hash and tron_knows(tron_url, tx_hash):
                on_chain = time.perf_counter()
                break
            time.sleep(0.01)
        # the worker records BROADCAST after the chain answered: wait for it (server-side figure)
        while on_chain is not None and time.perf_counter() < deadline:
            withdrawal.refresh_from_db()
            if withdrawal.broadcast_at is not None:
                break
            time.sleep(0.01)
        withdrawal.refresh_from_db()
        if on_chain is None:
            if i < 0:
                raise RuntimeError(
                    f"the warm-up withdrawal was not broadcast: {withdrawal.status} {withdrawal.last_error}"
                )
            progress(
                f"withdrawal {i}: not broadcast within 30 s ({withdrawal.status}, {withdrawal.last_error})"
            )
            continue
        progress(f"withdrawal {i}: on chain {on_chain - started:.3f} s after its confirmation")
        if i < 0:
            continue
        to_chain.append(on_chain - started)
        if withdrawal.broadcast_at and withdrawal.confirmed_at:
            server_side.append((withdrawal.broadcast_at - withdrawal.confirmed_at).total_seconds())
    return {
        "withdrawals": n,
        "broadcast": len(to_chain),
        "amount": "5000 USDT on TRON",
        "tiers": sorted(tiers),
        "confirm_to_on_chain": percentiles(to_chain) if to_chain else None,
        "confirmed_at_to_broadcast_at": percentiles(server_side) if server_side else None,
        "path": "withdrawal_confirm (commit) → Celery broker (Redis) → worker: hot wallet check, sign, "
        "claim, broadcast → the TRON node (sandbox/tron, its full-node HTTP API)",
    }


# ------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fills", type=int, default=30)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between measured fills")
    parser.add_argument("--withdrawals", type=int, default=10)
    args = parser.parse_args()
    from bench.reconciliation import sandbox_meta
    from sandbox.testing import SandboxProcess

    started = time.perf_counter()
    progress("setting up the push/withdrawal database …")
    own_redis_db()  # streams, quotes and broker of our own (pub/sub is server-wide: see exposure_with)
    os.environ["DJANGO_SETTINGS_MODULE"] = "xbit_admin.settings.test"
    setup_django(DB)
    from bench.trading_core import keep_quotes_fresh, seed
    from core.defaults import ensure_all

    ensure_all()
    logs = Path(tempfile.mkdtemp(prefix="bench-push-"))
    with SandboxProcess(seed=12) as sb:
        users = seed(sandbox_meta(sb.urls["hyperliquid"]))[:8]
        stop = [False]
        threading.Thread(target=keep_quotes_fresh, args=(stop,), daemon=True).start()
        cookie = staff_session_cookie()
        from django.db import connections

        connections.close_all()
        port = free_port()
        progress(f"starting web, relay, risk consumer and worker (logs in {logs}) …")
        procs = start_processes(port, sb.urls, logs)
        try:
            progress(f"exposure push: {args.fills} fills …")
            push = asyncio.run(exposure_push(port, cookie, users, args.fills, args.pause))
            p = push["commit_to_client"]
            progress(
                f"exposure push fill committed → websocket: p50 {p['p50_ms']:.1f} ms, p95 {p['p95_ms']:.1f} ms "
                f"(missed {push['missed']})"
            )
            progress(f"withdrawals: {args.withdrawals} …")
            sent = withdrawals(sb.urls["tron"], args.withdrawals)
            if sent["confirm_to_on_chain"]:
                w = sent["confirm_to_on_chain"]
                progress(f"withdrawal confirm → on chain: p50 {w['p50_ms']:.0f} ms, p95 {w['p95_ms']:.0f} ms")
        finally:
            stop[0] = True
            for proc in procs.values():
                stop_process(proc)
    shutil.rmtree(logs, ignore_errors=True)  # kept when something failed
    path = save(
        "push_withdrawal",
        {
            "git": git_rev(),
            "exposure_push": push,
            "withdrawal": sent,
            "goals": {"exposure_push_p95_ms": 250, "withdrawal_to_broadcast_s": 10},
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
    )
    progress(f"saved {path}")


if __name__ == "__main__":
    main()
