"""The drills' recovery verdict (``bench/drills.py: judge_recovery``) on synthetic timelines: a platform
that serves one order after the fault and then halts has not recovered; one that is serving again at
the end of the window has, and its recovery time is measured from the fault to the start of that
serving stretch, within a bound. No process is started."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

FAULT = 100.0
END = FAULT + 20.0  # the drills' default 20 s window after the fault


@pytest.fixture(scope="module")
def drills() -> ModuleType:
    # bench.common lifts the API's rate limits for the benchmark's own processes: not for this one's
    before = os.environ.get("API_RATE_LIMITS_LIFTED")
    try:
        return importlib.import_module("bench.drills")
    finally:
        if before is None:
            os.environ.pop("API_RATE_LIMITS_LIFTED", None)
        else:
            os.environ["API_RATE_LIMITS_LIFTED"] = before


def every(start: float, stop: float, step: float) -> list[float]:
    out, t = [], start
    while t < stop:
        out.append(round(t, 3))
        t += step
    return out


def test_a_platform_serving_again_after_a_short_outage_recovers_in_the_time_measured(
    drills: ModuleType,
) -> None:
    # web killed: 3 s of refused connections (retried every 0.5 s), then orders at ~10/s to the end
    judged = drills.judge_recovery(
        fault_at=FAULT,
        end=END,
        successes=every(FAULT + 3.05, END, 0.1),
        failures=every(FAULT + 0.2, FAULT + 3.0, 0.5),
    )
    assert judged.failure is None
    assert judged.recovery_s == pytest.approx(3.05, abs=0.01)
    assert judged.first_success_s == pytest.approx(3.05, abs=0.01)


def test_a_platform_that_serves_once_then_halts_has_not_recovered(drills: ModuleType) -> None:
    # issue 16: one order right after the fault, then 503 SERVICE_UNAVAILABLE on every attempt
    judged = drills.judge_recovery(
        fault_at=FAULT, end=END, successes=[FAULT + 0.3], failures=every(FAULT + 1.0, END, 0.5)
    )
    assert judged.recovery_s is None and judged.first_success_s == pytest.approx(0.3)
    assert judged.failure is not None and "not serving at the end" in judged.failure


def test_orders_that_mostly_fail_at_the_end_are_not_a_recovery(drills: ModuleType) -> None:
    # a trickle of successes in every second, but 4 of 5 placements refused
    judged = drills.judge_recovery(
        fault_at=FAULT, end=END, successes=every(FAULT + 0.5, END, 1.0), failures=every(FAULT, END, 0.25)
    )
    assert judged.failure is not None and "below 50%" in judged.failure


def test_a_recovery_slower_than_the_bound_fails_with_the_time_it_took(drills: ModuleType) -> None:
    judged = drills.judge_recovery(
        fault_at=FAULT,
        end=END,
        successes=every(FAULT + 16.0, END, 0.1),
        failures=every(FAULT + 0.2, FAULT + 16.0, 0.5),
    )
    assert judged.recovery_s == pytest.approx(16.0, abs=0.01)
    assert judged.failure is not None and "above the 15 s bound" in judged.failure


def test_a_drill_whose_fault_never_stopped_orders_recovers_at_once(drills: ModuleType) -> None:
    judged = drills.judge_recovery(
        fault_at=FAULT, end=END, successes=every(FAULT + 0.07, END, 0.05), failures=[]
    )
    assert judged.failure is None and judged.recovery_s == pytest.approx(0.07, abs=0.01)


def test_an_outage_in_the_middle_of_the_window_counts_from_the_fault(drills: ModuleType) -> None:
    # served at once, then halted from 2 s to 9 s, then served again: recovered when serving resumed
    successes = every(FAULT + 0.1, FAULT + 2.0, 0.1) + every(FAULT + 9.0, END, 0.1)
    failures = every(FAULT + 2.0, FAULT + 9.0, 0.5)
    judged = drills.judge_recovery(fault_at=FAULT, end=END, successes=successes, failures=failures)
    assert judged.failure is None
    assert judged.recovery_s == pytest.approx(9.0, abs=0.01)
    assert judged.first_success_s == pytest.approx(0.1, abs=0.01)
