"""A node's downlink for real downloads: every blob byte a node fetches takes from one budget.

A token bucket on the event loop's clock, filled at the node's bandwidth and holding at most a
quarter of a second of it, so several pulls on one node share the link and a burst after an
idle spell stays short. The bucket starts empty: a link stores nothing, and the capacity is
there to make up for the process's own stalls (a reader that was not scheduled for a moment
catches up), not to give a new node a head start the model's link (and a real one) does not
have. So a node's first download is never faster than its link. Waiting is `asyncio.sleep`,
never a busy loop.
"""

from __future__ import annotations

import asyncio
import math

_BURST_SECONDS = 0.25


class Downlink:
    def __init__(self, bytes_per_second: float) -> None:
        if not bytes_per_second > 0:
            raise ValueError("a downlink needs a positive bandwidth")
        self.rate = bytes_per_second
        self._capacity = max(bytes_per_second * _BURST_SECONDS, 64 * 1024)
        self._tokens = 0.0
        self._updated: float | None = None
        self._lock = asyncio.Lock()  # first come, first served: no pull starves another

    async def consume(self, size: int) -> None:
        """Return once `size` bytes fit the node's bandwidth."""
        if math.isinf(self.rate):
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            if self._updated is not None:
                self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= size
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / self.rate)
