"""The clock (virtual time that jumps to the next timer) and structlog configuration."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
import structlog

from kubesim_images.clock import VirtualTimeLoop, WallClock, run_virtual
from kubesim_images.logging import configure, get_logger, redact


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
            assert clock.rfc3339(90.0) == "2023-11-14T22:14:50Z"
        finally:
            loop.close()


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
