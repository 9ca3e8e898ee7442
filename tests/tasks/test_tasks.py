"""Guarded tasks: a crash is logged when it happens; stopping leaves nothing running."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from kubesim_images.tasks import create_guarded_task, stop_task


async def test_a_crash_is_logged_at_once():
    async def crash():
        raise RuntimeError("boom")

    with capture_logs() as logs:
        task = create_guarded_task(crash(), name="doomed", node="node-0")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    crashed = [entry for entry in logs if entry["event"] == "task_crashed"]
    assert len(crashed) == 1
    assert crashed[0]["task"] == "doomed"
    assert crashed[0]["node"] == "node-0"
    assert str(crashed[0]["exc_info"]) == "boom"


async def test_stop_cancels_and_waits_without_logging_a_crash():
    started = asyncio.Event()

    async def forever():
        started.set()
        await asyncio.Event().wait()

    with capture_logs() as logs:
        task = create_guarded_task(forever(), name="loop")
        await started.wait()
        await stop_task(task)
        await asyncio.sleep(0)
    assert task.cancelled()
    assert logs == []
    await stop_task(task)  # a second stop is harmless
