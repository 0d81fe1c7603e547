"""Hyperliquid simulator control API: determinism, candle replay, direct positions, reset, state dump."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.testing import SandboxProcess

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _config(csv: Path) -> dict[str, Any]:
    return {
        "hyperliquid": {
            "clock": "manual",
            "start_time_ms": START,
            "assets": {"DOGE": {"replay_csv": str(csv), "replay_step_s": 60}},
        }
    }


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two manual-clock sandboxes with the same seed and config (DOGE replays a candles CSV)."""
    csv = tmp_path_factory.mktemp("candles") / "doge.csv"
    csv.write_text(
        "time,open,high,low,close,volume\n0,0.30,0.32,0.29,0.31,100\n60000,0.31,0.31,0.25,0.26,100\n"
    )
    with SandboxProcess(seed=5, config=_config(csv)) as a, SandboxProcess(seed=5, config=_config(csv)) as b:
        yield a.urls["hyperliquid"], b.urls["hyperliquid"]


def _post(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    resp = requests.post(url + path, json=body or {}, timeout=30)
    resp.raise_for_status()
    return resp.json()


def test_same_seed_same_prices(twins: tuple[str, str]) -> None:
    a, b = twins
    for url in twins:
        _post(url, "/control/advance", {"seconds": 600})
    mids_a = _post(a, "/info", {"type": "allMids"})
    assert mids_a == _post(b, "/info", {"type": "allMids"})
    candles = _post(
        a,
        "/info",
        {
            "type": "candleSnapshot",
            "req": {"coin": "BTC", "interval": "1m", "startTime": 0, "endTime": 2**50},
        },
    )
    assert len(candles) == 11 and candles[0]["t"] == START
    assert candles == _post(
        b,
        "/info",
        {
            "type": "candleSnapshot",
            "req": {"coin": "BTC", "interval": "1m", "startTime": 0, "endTime": 2**50},
        },
    )
    ctx_a = _post(a, "/info", {"type": "metaAndAssetCtxs"})[1]
    assert [c["markPx"] for c in ctx_a] == [
        c["markPx"] for c in _post(b, "/info", {"type": "metaAndAssetCtxs"})[1]
    ]
    assert mids_a["BTC"] != "100000.0"  # the walk moved


def test_candle_replay_drives_the_oracle(twins: tuple[str, str]) -> None:
    a, _ = twins
    _post(a, "/control/reset")
    # each CSV row lasts replay_step_s=60 s: open, low, high, close for an up candle (15 s each)
    for seconds, expected in (
        (15, "0.29"),
        (15, "0.32"),
        (15, "0.31"),
        (15, "0.31"),
        (15, "0.31"),
        (15, "0.25"),
    ):
        _post(a, "/control/advance", {"seconds": seconds})
        ctx = _post(a, "/info", {"type": "metaAndAssetCtxs"})[1][4]
        assert Decimal(ctx["oraclePx"]) == Decimal(expected), (seconds, ctx)


def test_position_set_directly_and_account_inspection(twins: tuple[str, str]) -> None:
    a, _ = twins
    user = "0x00000000000000000000000000000000000000a1"
    _post(a, "/control/fund", {"address": user, "usdc": "20000"})
    _post(
        a,
        "/control/position",
        {"address": user, "coin": "ETH", "szi": "-2", "entryPx": "3600", "leverage": 5},
    )
    state = _post(a, "/info", {"type": "clearinghouseState", "user": user})
    (p,) = state["assetPositions"]
    assert p["position"]["szi"] == "-2.0" and Decimal(p["position"]["entryPx"]) == 3600
    assert p["position"]["leverage"] == {"type": "cross", "value": 5}
    acct = requests.get(a + "/control/account", params={"address": user}, timeout=10).json()
    assert acct["cash"] == "20000.0" and acct["positions"]["ETH"]["szi"] == "-2.0"
    _post(a, "/control/debit", {"address": user, "usdc": "5000"})
    _post(a, "/control/position", {"address": user, "coin": "ETH", "szi": "0"})
    state = _post(a, "/info", {"type": "clearinghouseState", "user": user})
    assert state["assetPositions"] == [] and state["marginSummary"]["accountValue"] == "15000.0"


def test_state_dump_reset_and_jump(twins: tuple[str, str]) -> None:
    a, _ = twins
    dump = requests.get(a + "/control/state", timeout=10).json()
    assert set(dump) >= {"time", "assets", "accounts", "faults", "ws", "liquidations"}
    assert dump["clock"] == "manual" and len(dump["accounts"]) >= 5  # the pre-funded defaults
    before = Decimal(dump["assets"]["SOL"]["oracle"])
    jumped = _post(a, "/control/jump", {"coin": "SOL", "pct": -10})
    assert Decimal(jumped["prices"]["SOL"]["oracle"]) == pytest.approx(
        before * Decimal("0.9"), rel=Decimal("0.001")
    )
    shocked = _post(a, "/control/shock", {"coin": "SOL", "pct": 10})
    assert Decimal(shocked["prices"]["SOL"]["oracle"]) == pytest.approx(
        before * Decimal("0.99"), rel=Decimal("0.001")
    )
    assert _post(a, "/control/reset")["time"] == START
    assert Decimal(requests.get(a + "/control/state", timeout=10).json()["assets"]["SOL"]["oracle"]) == 180
    accounts = requests.get(a + "/control/accounts", timeout=10).json()
    assert len(accounts) == 5 and all(x["private_key"].startswith("0x") for x in accounts)
