"""Fault test (spec 03 "Safety"): a worker killed with SIGKILL in the middle of a liquidation leaves
no trace but its claim; after restart the liquidation completes exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from risk.config import risk_config_update
from risk.detection import liquidation_sweep
from risk.models import LiquidationRecord, LiquidationTrigger
from trading.models import Fill, Position
from wallets.models import LedgerBatch

D = Decimal
# spec 03's 800 margin at 72,280 less the 3.2526 taker fee (issue 18), split 80/20
SPEC_SPLIT = (D("796.7474"), D("637.39792"), D("159.34948"))
ROOT = Path(__file__).resolve().parents[2]


def _executor(env_extra: dict[str, str]) -> subprocess.Popen[str]:
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    env = {
        **os.environ,
        "DATABASE_URL": f"{base}/{connection.settings_dict['NAME']}",
        "DJANGO_SETTINGS_MODULE": "xbit_admin.settings.test",
        **env_extra,
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "risk_sweep", "--once", "--no-detect"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_liquidation_leaves_it_to_be_completed_exactly_once(
    btc_mmr_0_004: Any, trader: Any, open_position: Any, tmp_path: Path
) -> None:
    position = open_position(trader, size="0.1", entry="80000", leverage=10)
    risk_config_update(changes={"liquidation_lease_seconds": 1}, acting_user=None, reason="fault test")
    assert liquidation_sweep(marks={"BTC": D("72280")}, wake=False)["created"] == 1
    trigger = LiquidationTrigger.objects.get()

    marker = tmp_path / "paused"
    worker = _executor({"XBIT_TEST_LIQUIDATION_PAUSE": f"{marker}:120"})
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
        assert time.monotonic() < deadline, "the executor never reached the liquidation"
        time.sleep(0.05)
    # the fill, the postings and the record are written but not committed: kill -9 now
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    assert worker.returncode == -signal.SIGKILL

    trigger.refresh_from_db()
    position.refresh_from_db()
    assert trigger.status == "EXECUTING" and trigger.attempts == 1  # only the claim survived
    assert position.status == "OPEN" and not Fill.objects.filter(is_liquidation=True).exists()
    assert not LedgerBatch.objects.filter(key__startswith=trigger.trigger_id).exists()

    time.sleep(1.2)  # the lease expires
    restarted = _executor({})
    output, _ = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, output
    assert "drained 1 trigger(s)" in output

    trigger.refresh_from_db()
    position.refresh_from_db()
    assert trigger.status == "COMPLETED" and trigger.attempts == 2
    assert position.status == "LIQUIDATED"
    assert Position.objects.filter(status="LIQUIDATED").count() == 1
    assert Fill.objects.filter(is_liquidation=True).count() == 1
    assert LiquidationRecord.objects.count() == 1
    keys = sorted(
        LedgerBatch.objects.filter(key__startswith=trigger.trigger_id).values_list("key", flat=True)
    )
    assert keys == [trigger.trigger_id, f"{trigger.trigger_id}:settle"]
    assert (trigger.loss, trigger.platform_share, trigger.reserve_share) == SPEC_SPLIT
    # and running the executor again does nothing
    again = _executor({})
    output, _ = again.communicate(timeout=120)
    assert "drained 0 trigger(s)" in output
    # ledger invariants are checked by the root conftest after the test


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_leaves_every_liquidation_of_the_batch_to_be_done_exactly_once(
    btc_mmr_0_004: Any, make_trader: Any, fund: Any, open_position: Any, tmp_path: Path
) -> None:
    users = [make_trader() for _ in range(3)]
    positions = []
    for user in users:
        fund(user, "5000")
        positions.append(open_position(user, size="0.1", entry="80000", leverage=10))
    risk_config_update(changes={"liquidation_lease_seconds": 1}, acting_user=None, reason="fault test")
    assert liquidation_sweep(marks={"BTC": D("72280")}, wake=False)["created"] == 3

    marker = tmp_path / "paused"
    worker = _executor({"XBIT_TEST_LIQUIDATION_PAUSE": f"{marker}:120"})
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
        assert time.monotonic() < deadline, "the executor never reached the batch"
        time.sleep(0.05)
    # the whole batch is written (fills, postings, records, outcomes) but not committed: kill -9 now
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    assert sorted(LiquidationTrigger.objects.values_list("status", "attempts")) == [("EXECUTING", 1)] * 3
    assert Position.objects.filter(status="OPEN").count() == 3
    assert not Fill.objects.filter(is_liquidation=True).exists() and not LiquidationRecord.objects.exists()
    assert not LedgerBatch.objects.filter(key__startswith="liq:").exists()

    time.sleep(1.2)  # the leases expire
    restarted = _executor({})
    output, _ = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, output
    assert "drained 3 trigger(s)" in output
    assert sorted(LiquidationTrigger.objects.values_list("status", "attempts")) == [("COMPLETED", 2)] * 3
    assert Position.objects.filter(status="LIQUIDATED").count() == 3
    assert Fill.objects.filter(is_liquidation=True).count() == 3 == LiquidationRecord.objects.count()
    for trigger in LiquidationTrigger.objects.all():
        keys = sorted(
            LedgerBatch.objects.filter(key__startswith=trigger.trigger_id).values_list("key", flat=True)
        )
        assert keys == [trigger.trigger_id, f"{trigger.trigger_id}:settle"]
        assert (trigger.loss, trigger.platform_share, trigger.reserve_share) == SPEC_SPLIT
