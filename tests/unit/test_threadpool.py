"""The drive thread pool (``common.threadpool``): results, errors, the size
bound, order, non-cancellation (and ``on_cancel``) and idle exit."""

from __future__ import annotations

import threading
import time

import pytest
import trio
import trio.testing

from common.threadpool import ThreadPool


async def test_result_and_exception_come_back():
    pool = ThreadPool(2)
    assert await pool.run(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        await pool.run(lambda: 1 / 0)
    assert await pool.run(threading.current_thread) is not threading.current_thread()


async def test_at_most_size_calls_run_at_once_and_all_finish():
    pool = ThreadPool(3)
    lock = threading.Lock()
    running = peak = 0
    done = []

    def job(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        done.append(i)
        return i

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(pool.run, job, i)
    assert peak == 3
    assert sorted(done) == list(range(20))
    assert pool.threads <= 3


async def test_one_thread_runs_jobs_in_submission_order():
    pool = ThreadPool(1)
    order: list[int] = []
    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(pool.run, order.append, i)
            await trio.testing.wait_all_tasks_blocked()  # task i has submitted
    assert order == list(range(10))


async def test_a_cancelled_caller_still_waits_for_its_call():
    pool = ThreadPool(1)
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.2)
        finished.set()

    with trio.move_on_after(0.01):
        await pool.run(slow)
    assert finished.is_set()  # the half-done call was not abandoned


async def test_on_cancel_hurries_the_call_and_the_caller_still_waits_for_it():
    pool = ThreadPool(1)
    stop = threading.Event()
    calls: list[str] = []

    def waits() -> str:
        stop.wait(10)  # until on_cancel says so
        calls.append("ended")
        return "ended early" if stop.is_set() else "ran out"

    started = time.monotonic()
    with trio.move_on_after(0.05) as scope:
        await pool.run(waits, on_cancel=stop.set)
    assert scope.cancel_called and calls == ["ended"]
    assert time.monotonic() - started < 5  # hurried, not the 10 s wait
    # no cancellation: on_cancel is never called
    assert await pool.run(lambda: "fine", on_cancel=lambda: calls.append("hurried")) == "fine"
    assert calls == ["ended"]


async def test_idle_threads_exit():
    pool = ThreadPool(2, idle_timeout=0.05)
    await pool.run(time.sleep, 0)
    assert pool.threads == 1
    await trio.sleep(0.3)
    assert pool.threads == 0
    assert await pool.run(lambda: "again") == "again"  # and start again on demand


def test_size_must_be_positive():
    with pytest.raises(ValueError):
        ThreadPool(0)
