"""``make soak``'s verdict (``bench/soak.py: report_failures``) on synthetic reports: a soak passes only
when it really ran its market day — every fault injected, the web log actually read — and nothing it
judges went wrong. No platform is started; the report is a plain dict."""

from __future__ import annotations

import copy
import importlib
import os
from types import ModuleType
from typing import Any

import pytest

from core.alerts.notifications import CONSUMER_GROUP as alerts
from risk.client_risk.markouts import CONSUMER_GROUP as markouts
from risk.exposure import CONSUMER_GROUP as exposure
from risk.hedge_engine import HEDGE_CONSUMER_GROUP as hedge
from trading.stream.fanout import GROUP as user_stream


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    # bench.common lifts the API's rate limits for the benchmark's own processes: not for this one's
    before = os.environ.get("API_RATE_LIMITS_LIFTED")
    try:
        return importlib.import_module("bench.soak")
    finally:
        if before is None:
            os.environ.pop("API_RATE_LIMITS_LIFTED", None)
        else:
            os.environ["API_RATE_LIMITS_LIFTED"] = before


PASSING: dict[str, Any] = {
    "ready_after_s": 21.4,
    "faults": [
        {"name": "SOL moves 10 %", "at": "2026-12-07T03:00:00+00:00", "error": None},
        {"name": "HL /exchange 5xx ×10", "at": "2026-12-07T03:01:00+00:00", "error": None},
        {"name": "Redis restart", "at": "2026-12-07T03:02:00+00:00", "error": None},
    ],
    "http_requests_logged": 4210,
    "false_alarms": [],
    "http_5xx": [],
    "invariant_violations": 0,
    "gate_closures": [{"at": 1.0, "open": False, "reason": "prices stale", "explained_by": "Redis restart"}],
    "reconciliation_at_end": {"exposure": "OK", "hl_account_value": "OK"},
    "orders_filled_by_route": {"INTERNAL": 310, "HYPERLIQUID": 42},
    "memory": {
        "web": {"start_mib": 226.6, "end_mib": 236.7, "growth": 0.045},
        "sandbox": {"start_mib": 85.6, "end_mib": 90.1, "growth": 0.053},
        "evm": {"start_mib": 109.5, "end_mib": 163.2, "growth": 0.49},
    },
    "memory_growing": [],
    "events_behind_at_end": {
        "outbox_unpublished": 0,
        "alerts.notifier": 0,
        "risk-exposure": 0,
        "risk-hedge": 4,
        "risk-markouts": 0,
        "user-stream": 0,
    },
}


def _memory(name: str, start: float, end: float) -> dict[str, Any]:
    memory = copy.deepcopy(PASSING["memory"])
    memory[name] = {"start_mib": start, "end_mib": end, "growth": round(end / start - 1, 3)}
    return memory


def with_(**changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(PASSING)
    result.update(changes)
    return result


def test_a_soak_that_ran_its_whole_day_cleanly_passes(soak: ModuleType) -> None:
    assert soak.report_failures(copy.deepcopy(PASSING)) == []


def test_a_fault_that_could_not_be_injected_fails_the_soak_by_name(soak: ModuleType) -> None:
    faults = copy.deepcopy(PASSING["faults"])
    faults[2]["error"] = "ConnectionError: redis-server did not stop"
    failures = soak.report_failures(with_(faults=faults))
    assert len(failures) == 1
    assert "Redis restart" in failures[0] and "redis-server did not stop" in failures[0]


def test_a_fault_the_run_never_reached_fails_the_soak(soak: ModuleType) -> None:
    faults = copy.deepcopy(PASSING["faults"])
    faults[1]["at"] = None
    (failure,) = soak.report_failures(with_(faults=faults))
    assert "HL /exchange 5xx ×10" in failure


def test_a_web_log_without_a_single_request_is_not_zero_5xx(soak: ModuleType) -> None:
    # a changed log format parses to nothing: that must not read as a clean run
    (failure,) = soak.report_failures(with_(http_requests_logged=0, http_5xx=[]))
    assert "no HTTP request" in failure


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"ready_after_s": None}, "not ready within"),
        ({"ready_after_s": 75.0}, "not ready within"),
        ({"false_alarms": [{"rule": "drift"}]}, "false alarm"),
        ({"http_5xx": [{"status": 500, "during": None}]}, "1 HTTP 5xx"),
        # a 502 inside the HL 5xx burst fails too: the cancel is sent again, never passed on
        ({"http_5xx": [{"status": 502, "during": "HL /exchange 5xx ×10"}]}, "1 HTTP 5xx"),
        ({"http_5xx": [{"status": 503, "during": "Redis restart"}]}, "1 HTTP 5xx"),
        ({"invariant_violations": 2}, "invariant violation"),
        ({"gate_closures": [{"open": False, "explained_by": None}]}, "without a cause"),
        ({"reconciliation_at_end": {"exposure": "CRITICAL"}}, "reconciliation not OK"),
        ({"orders_filled_by_route": {"INTERNAL": 0, "HYPERLIQUID": 3}}, "both must be > 0"),
        ({"memory": _memory("web", 226.6, 290.0)}, "memory growing > 20%: web"),
        ({"memory": _memory("feed", 221.3, 270.0)}, "memory growing > 20%: feed"),
        # the 60-minute soak at d94974a: the fan-out's group gone since the Redis restart, not judged then
        (
            {
                "events_behind_at_end": {
                    k: v for k, v in PASSING["events_behind_at_end"].items() if k != "user-stream"
                }
            },
            "consumer group(s) missing at the end, their readers stopped: user-stream",
        ),
        ({"events_behind_at_end": None}, "consumer groups were not read"),
    ],
)
def test_each_judged_failure_fails_the_soak(soak: ModuleType, changes: dict[str, Any], phrase: str) -> None:
    (failure,) = soak.report_failures(with_(**changes))
    assert phrase in failure


def test_a_5xx_failure_names_each_error_in_the_verdict_line(soak: ModuleType) -> None:
    # CI shows the last lines of a failed run: the verdict itself says what failed, and when
    errors = [
        {
            "at": "2026-12-07T23:58:01.250000+00:00",
            "route": "api/v1/orders/<int:order_id>",
            "status": 502,
            "code": "VENUE_ERROR",
            "during": "HL /exchange 5xx ×10",
        },
        {"at": "2026-12-07T23:59:30+00:00", "route": "api/v1/orders", "status": 503, "during": None},
    ]
    (failure,) = soak.report_failures(with_(http_5xx=errors))
    assert failure == (
        "2 HTTP 5xx (502 VENUE_ERROR api/v1/orders/<int:order_id> at 23:58:01 during HL /exchange 5xx ×10; "
        "503 api/v1/orders at 23:59:30 during no fault)"
    )


def test_the_venue_stand_ins_history_is_reported_not_judged_and_small_growth_is_noise(
    soak: ModuleType,
) -> None:
    # the simulated HL keeps its finished orders and fills (capped) as HL does: +21 % in the 60-minute soak
    assert soak.report_failures(with_(memory=_memory("sandbox", 85.6, 103.6))) == []
    # under the 16 MiB floor a relative growth is the allocator, not a leak
    assert soak.report_failures(with_(memory=_memory("relay", 50.0, 64.0))) == []
    assert soak.memory_growing(_memory("relay", 50.0, 67.0)) == ["relay"]


def test_the_judged_consumer_groups_are_the_readers_own(soak: ModuleType) -> None:
    assert sorted(soak.CONSUMER_GROUPS) == sorted([alerts, markouts, exposure, hedge, user_stream])
