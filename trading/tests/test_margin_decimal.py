"""``exact``: every margin function runs in EXACT_CONTEXT, whether it is called from outside, from
another margin function, or from code that switched the context in between."""

from __future__ import annotations

import threading
from decimal import Context, Decimal, getcontext, localcontext, setcontext

from trading.margin_decimal import EXACT_CONTEXT, exact


@exact
def _precision() -> int:
    return getcontext().prec


@exact
def _third() -> Decimal:
    return Decimal(1) / Decimal(3)


def test_a_call_from_outside_runs_in_the_exact_context_and_leaves_the_callers_alone() -> None:
    with localcontext(Context(prec=6)):
        assert _precision() == EXACT_CONTEXT.prec
        assert len(str(_third())) == EXACT_CONTEXT.prec + 2
        assert getcontext().prec == 6


def test_nested_calls_share_the_outer_context_unless_the_context_was_switched_inside() -> None:
    seen: dict[str, object] = {}

    @exact
    def outer() -> None:
        seen["outer"] = getcontext()
        seen["nested"] = _precision()
        with localcontext(Context(prec=5)):
            seen["switched"] = _precision()  # exact again, not the caller's 5 digits
            seen["after_switched"] = getcontext().prec
        saved = getcontext()
        setcontext(Context(prec=7))
        try:
            seen["set"] = _precision()
        finally:
            setcontext(saved)
        seen["last"] = _precision()

    outer()
    assert seen["nested"] == seen["switched"] == seen["set"] == seen["last"] == EXACT_CONTEXT.prec
    assert seen["after_switched"] == 5
    assert _precision() == EXACT_CONTEXT.prec and getcontext().prec != EXACT_CONTEXT.prec


def test_threads_do_not_share_the_entered_context() -> None:
    results: list[int] = []

    def run() -> None:
        with localcontext(Context(prec=4)):
            results.append(_precision())

    @exact
    def outer() -> None:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
        results.append(_precision())

    outer()
    assert results == [EXACT_CONTEXT.prec, EXACT_CONTEXT.prec]
