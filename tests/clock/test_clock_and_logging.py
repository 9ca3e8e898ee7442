"""The clock (virtual time that jumps to the next timer) and structlog configuration."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import weakref

import pytest
import structlog

from kubesim_images.clock import (
    VirtualTimeLoop,
    WallClock,
    collect_cycles,
    now_ns,
    run_virtual,
    sleep_ns,
)
from kubesim_images.logging import configure, get_logger, redact

S = 1_000_000_000


class TestVirtualTime:
    def test_hours_of_sleep_cost_no_wall_time_and_land_exactly(self):
        async def main():
            loop = asyncio.get_running_loop()
            seen = []
            for delay in (10.0, 20.0, 0.1, 3 * 86400.0):
                await asyncio.sleep(delay)
                seen.append(loop.time())
            return seen

        assert run_virtual(main()) == [10.0, 30.0, 30.1, 30.1 + 3 * 86400.0]

    def test_concurrent_timers_fire_in_deadline_order(self):
        async def main():
            order = []

            async def sleeper(name, delay):
                await asyncio.sleep(delay)
                order.append((name, asyncio.get_running_loop().time()))

            await asyncio.gather(sleeper("c", 3), sleeper("a", 1), sleeper("b", 2))
            return order

        assert run_virtual(main()) == [("a", 1.0), ("b", 2.0), ("c", 3.0)]

    def test_timeouts_are_virtual_too(self):
        async def main():
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.Event().wait(), timeout=600)
            return asyncio.get_running_loop().time()

        assert run_virtual(main()) == 600.0

    def test_threads_can_still_wake_the_loop(self):
        async def main():
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, lambda: 42), loop.time()

        assert run_virtual(main()) == (42, 0.0)

    def test_leftover_tasks_are_cancelled_on_exit(self):
        cancelled = []

        async def forever():
            try:
                await asyncio.sleep(1e9)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        async def main():
            asyncio.get_running_loop().create_task(forever())
            await asyncio.sleep(1)

        run_virtual(main())
        assert cancelled == [True]

    def test_loop_starts_at_zero(self):
        loop = VirtualTimeLoop()
        try:
            assert loop.time() == 0.0
        finally:
            loop.close()

    def test_wall_clock_maps_loop_time_to_calendar_time(self):
        loop = VirtualTimeLoop()
        try:
            clock = WallClock(loop, epoch=1_700_000_000.0)
            assert clock.rfc3339(90 * S) == "2023-11-14T22:14:50Z"
            assert clock.epoch(1_500_000_000) == 1_700_000_001.5
            assert clock.loop_time(1_700_000_001.5) == 1_500_000_000
        finally:
            loop.close()

    def test_time_is_integer_nanoseconds_and_sums_exactly(self):
        async def main():
            for _ in range(10):
                await asyncio.sleep(0.1)
            await sleep_ns(1)
            return now_ns()

        # Ten float sleeps of 0.1 s land on exactly one second (0.1 * 10 in floats does not).
        assert run_virtual(main()) == S + 1


class TestTieRule:
    """Events due at the same instant run in the order they were scheduled."""

    def test_timers_for_one_instant_run_in_scheduling_order(self):
        async def main():
            loop = asyncio.get_running_loop()
            order = []
            # Scheduled in a scrambled order of deadlines; many share one instant, which
            # asyncio's heap alone would release in heap order, not first-in-first-out.
            for i in range(200):
                loop.call_at_ns(5 * S if i % 3 else 7 * S, order.append, i)
            await sleep_ns(8 * S)
            return order

        order = run_virtual(main())
        assert order == [i for i in range(200) if i % 3] + [i for i in range(200) if not i % 3]

    def test_a_timer_scheduled_later_for_the_same_instant_runs_after(self):
        async def main():
            loop = asyncio.get_running_loop()
            order = []
            loop.call_at_ns(10 * S, order.append, "early, for 10s")
            await sleep_ns(3 * S)
            loop.call_later(7, order.append, "at 3s, for 10s")
            await sleep_ns(4 * S)
            loop.call_at(10.0, order.append, "at 7s, for 10s")
            await sleep_ns(4 * S)
            return order

        assert run_virtual(main()) == ["early, for 10s", "at 3s, for 10s", "at 7s, for 10s"]

    def test_sleepers_waking_together_resume_in_the_order_they_slept(self):
        async def main():
            woke = []

            async def sleeper(went_to_sleep_at):
                await sleep_ns(went_to_sleep_at * S)
                await sleep_ns((10 - went_to_sleep_at) * S)  # everyone wakes at 10 s
                woke.append(went_to_sleep_at)

            await asyncio.gather(*(sleeper(at) for at in (9, 3, 7, 1, 5, 8, 2, 6, 4)))
            return woke

        assert run_virtual(main()) == [1, 2, 3, 4, 5, 6, 7, 8, 9]

    def test_a_cancelled_timer_does_not_disturb_the_order(self):
        async def main():
            loop = asyncio.get_running_loop()
            order = []
            handles = [loop.call_at_ns(S, order.append, i) for i in range(10)]
            handles[4].cancel()
            await sleep_ns(2 * S)
            return order

        assert run_virtual(main()) == [0, 1, 2, 3, 5, 6, 7, 8, 9]

    def test_many_cancelled_timers_are_dropped_and_the_rest_keep_their_order(self):
        async def main():
            loop = asyncio.get_running_loop()
            order = []
            handles = [loop.call_at_ns((1 + i % 7) * S, order.append, i) for i in range(2000)]
            for i, handle in enumerate(handles):
                if i % 5:
                    handle.cancel()  # 1,600 of 2,000: the heap is rebuilt without them
            await sleep_ns(10 * S)
            assert not loop._timers
            return order

        kept = [i for i in range(2000) if not i % 5]
        assert run_virtual(main()) == sorted(kept, key=lambda i: (i % 7, i))


class TestCollector:
    """The cyclic collector is off during a virtual run; `collect_cycles` frees what cycles
    the run made; afterwards the collector is as it was."""

    def test_cycles_wait_for_collect_cycles_and_the_collector_comes_back(self):
        class Node:
            other: Node

        async def main():
            a, b = Node(), Node()
            a.other, b.other = b, a
            gone = weakref.ref(a)
            del a, b
            # Enough new containers, kept alive, to pass any threshold the collector acts on.
            kept = [[] for _ in range(300_000)]
            alive_before = gone() is not None
            del kept
            collect_cycles()
            return alive_before, gone() is None

        thresholds = gc.get_threshold()
        assert run_virtual(main()) == (True, True)
        assert gc.isenabled()
        assert gc.get_threshold() == thresholds


class TestLogging:
    def test_json_lines_with_bound_context(self):
        stream = io.StringIO()
        configure(log_format="json", level="info", stream=stream)
        try:
            get_logger(node="node-0").info("pull_started", pod="default/web-0", image="nginx")
            get_logger().debug("hidden")
        finally:
            structlog.reset_defaults()
        (line,) = stream.getvalue().splitlines()
        record = json.loads(line)
        assert record["event"] == "pull_started"
        assert (record["node"], record["pod"], record["level"]) == (
            "node-0",
            "default/web-0",
            "info",
        )
        assert "timestamp" in record

    def test_secrets_are_redacted(self):
        event = redact(
            None,
            "info",
            {
                "event": "x",
                "password": "hunter2",
                "Auth": "abc",
                "registry_token": "t",
                "image": "nginx",
            },
        )
        assert event == {
            "event": "x",
            "password": "[REDACTED]",
            "Auth": "[REDACTED]",
            "registry_token": "[REDACTED]",
            "image": "nginx",
        }

    def test_console_format_and_unknown_format(self):
        stream = io.StringIO()
        configure(log_format="console", level="debug", stream=stream)
        try:
            get_logger().debug("hello", token="s3cret")
        finally:
            structlog.reset_defaults()
        assert "hello" in stream.getvalue()
        assert "s3cret" not in stream.getvalue()
        with pytest.raises(ValueError, match="unknown log format"):
            configure(log_format="xml")
