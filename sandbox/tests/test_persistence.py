"""``--state-dir``: the simulated venues keep positions, balances, approved agents and chain state across
a restart, and the HL clock continues from now."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from sandbox.testing import SandboxProcess


def test_a_restart_with_a_state_dir_keeps_the_venues_state(tmp_path: Path) -> None:
    config = {
        "hyperliquid": {"state_file": str(tmp_path / "hl.pickle")},
        "tron": {"state_file": str(tmp_path / "tron.pickle")},
    }
    with SandboxProcess(seed=5, config=config) as sb:
        url = sb.urls["hyperliquid"]
        master = Account.from_key(requests.get(f"{url}/control/accounts", timeout=5).json()[0]["private_key"])
        exchange = Exchange(master, url, timeout=10)
        result, agent_key = exchange.approve_agent("persist-test")
        assert result["status"] == "ok"
        agent = Exchange(Account.from_key(agent_key), url, account_address=master.address, timeout=10)
        assert agent.market_open("BTC", True, 0.01)["status"] == "ok"
        before = Info(url, skip_ws=True, timeout=10).user_state(master.address)
        address = "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"
        requests.post(
            f"{sb.urls['tron']}/control/fund",
            json={"address": address, "asset": "USDT", "amount": 1_234_500_000},
            timeout=5,
        ).raise_for_status()
    with SandboxProcess(seed=5, config=config) as sb:
        url = sb.urls["hyperliquid"]
        after = Info(url, skip_ws=True, timeout=10).user_state(master.address)
        assert [p["position"]["szi"] for p in after["assetPositions"]] == [
            p["position"]["szi"] for p in before["assetPositions"]
        ]
        # the agent approved before the restart still signs for the master
        agent = Exchange(Account.from_key(agent_key), url, account_address=master.address, timeout=10)
        assert agent.market_open("BTC", False, 0.01)["status"] == "ok"
        assert abs(int(after["time"]) - int(time.time() * 1000)) < 10_000  # the clock continued from now
        usdt = requests.get(f"{sb.urls['tron']}/control/state", timeout=5).json()["usdt"]
        assert usdt[address] == 1_234_500_000  # the TRON node's accounts came back
