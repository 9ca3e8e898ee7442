"""`scenario run --real-time`: a variant on the wall clock, counted from 0 like virtual time.

Real registries (`registry: {type: oci}`) need it; their backends and each node's content
store come from `backends.build`, as the daemon's do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class _WallTimeLoop(asyncio.SelectorEventLoop):
    """The wall clock, counted from the start of the run as virtual time is: pods are created
    at their `at` and reported times read the same in both modes."""

    def __init__(self) -> None:
        super().__init__()
        self._start = super().time()

    def time(self) -> float:
        return super().time() - self._start


def run_real_time(main: Coroutine[Any, Any, _T]) -> _T:
    with asyncio.Runner(loop_factory=_WallTimeLoop) as runner:
        return runner.run(main)
