"""The order lane's worker threads (core.threads.LoopThreads): results, errors, context, cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from core.threads import LoopThreads

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def test_result_and_error_come_back_to_the_caller() -> None:
    threads = LoopThreads("t-result", default_workers=2)

    def fail() -> None:
        raise KeyError("boom")

    async def main() -> tuple[int, str]:
        value = await threads.run(lambda a, b: a + b, 2, 3)
        with pytest.raises(KeyError, match="boom"):
            await threads.run(fail)
        return value, threading.current_thread().name

    value, caller = asyncio.run(main())
    assert value == 5 and not caller.startswith("t-result")


def test_calls_run_on_the_worker_threads_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """As many calls as workers run together (each waits for the others): no call queues behind another."""
    monkeypatch.delenv("DB_POOL_MAX", raising=False)
    threads = LoopThreads("t-parallel", default_workers=4)
    barrier = threading.Barrier(4)

    def meet() -> str:
        barrier.wait(timeout=5)
        return threading.current_thread().name

    async def main() -> list[str]:
        return list(await asyncio.gather(*(threads.run(meet) for _ in range(4))))

    names = asyncio.run(main())
    assert len(set(names)) == 4 and all(n.startswith("t-parallel_") for n in names)


def test_workers_follow_db_pool_max(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_MAX", "3")
    threads = LoopThreads("t-sized", default_workers=8)
    asyncio.run(threads.run(lambda: None))
    assert threads.workers == 3


def test_the_callers_context_goes_with_the_call() -> None:
    threads = LoopThreads("t-context", default_workers=1)

    async def main() -> str:
        request_id.set("r-42")
        context = contextvars.copy_context()
        return await threads.run(context.run, request_id.get)

    assert asyncio.run(main()) == "r-42"


def test_a_cancelled_caller_leaves_the_threads_working() -> None:
    threads = LoopThreads("t-cancel", default_workers=1)
    finished = threading.Event()

    def slow() -> str:
        time.sleep(0.2)
        finished.set()
        return "late"

    async def main() -> str:
        task = asyncio.ensure_future(threads.run(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished.wait(2)
        await asyncio.sleep(0.05)  # the late result arrives at a cancelled future: dropped
        return await threads.run(lambda: "next")

    assert asyncio.run(main()) == "next"


def test_a_result_after_the_loop_closed_is_dropped() -> None:
    threads = LoopThreads("t-closed", default_workers=1)
    release = threading.Event()
    done = threading.Event()

    def blocked() -> None:
        release.wait(5)

    async def main() -> None:
        task = asyncio.ensure_future(threads.run(blocked))
        await asyncio.sleep(0.05)
        task.cancel()  # the loop is going away with its tasks; the call itself still runs
        await asyncio.gather(task, return_exceptions=True)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()
    release.set()
    # the worker survives handing a result to a closed loop, and takes the next call
    loop = asyncio.new_event_loop()
    try:
        call = asyncio.wait_for(threads.run(lambda: done.set() or "alive"), timeout=5)
        assert loop.run_until_complete(call) == "alive"
    finally:
        loop.close()
    assert done.is_set()


def test_on_each_runs_once_on_every_worker() -> None:
    threads = LoopThreads("t-each", default_workers=3)
    threads.on_each(lambda: None)  # no thread started yet: nothing to do
    asyncio.run(threads.run(lambda: None))
    seen: list[str] = []
    threads.on_each(lambda: seen.append(threading.current_thread().name))
    assert sorted(seen) == [f"t-each_{n}" for n in range(3)]

    def fail() -> None:
        raise RuntimeError("close failed")

    with pytest.raises(RuntimeError, match="close failed"):
        threads.on_each(fail)
