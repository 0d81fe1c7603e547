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
        "chains": {"state_file": str(tmp_path / "chains.pickle")},
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
        chains = sb.urls["chains"]
        address = "0x" + "12" * 20
        requests.post(
            f"{chains}/control/ETH/fund",
            json={"address": address, "asset": "USDT", "amount": "1234.5"},
            timeout=5,
        )
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
        balance = requests.get(
            f"{sb.urls['chains']}/ETH/balance/{address}", params={"asset": "USDT"}, timeout=5
        ).json()
        assert "1234.5" in str(balance)
