"""Background tasks with an owner and a guard, as kopf's `create_guarded_task`.

A task that dies of an unexpected exception would otherwise stay silent until someone awaits
it, which for a periodic loop is at shutdown: the guard logs the crash the moment it happens.
The owner keeps the returned task and ends it with `stop_task`, which cancels, waits, and
leaves nothing behind (the test suite fails any test that leaks a task).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from kubesim_images.logging import get_logger


def create_guarded_task(
    coro: Coroutine[Any, Any, None], *, name: str, **context: Any
) -> asyncio.Task[None]:
    """Start `coro` as a named task whose crash is logged at once (`task_crashed`)."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    task.add_done_callback(TaskGuard(**context))
    return task


class TaskGuard:
    """The done-callback that logs a task's crash at once, with the owner's context.

    One guard serves every task of its owner: a node's pod workers share theirs, so guarding a
    million pod workers allocates nothing per task.
    """

    __slots__ = ("_context",)

    def __init__(self, **context: Any) -> None:
        self._context = context

    def __call__(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            get_logger(**self._context).error("task_crashed", task=task.get_name(), exc_info=exc)


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a task and wait until it has ended; its crash was already logged."""
    if task is None or task.done():
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
