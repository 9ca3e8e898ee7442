"""A blob's bytes hashed and written off the event loop, in order, with bounded memory.

sha256 and the file write are most of the CPU a pull spends per byte, and both release the GIL
on large buffers: done in a worker thread they run on another core while the loop reads the
next bytes from the socket. One batch is in the worker at a time, so the ingest sees its chunks
in order from one thread at a time; what arrives meanwhile is gathered into the next batch, and
once that holds `max_pending` bytes the reader waits for the worker. So a blob holds at most
about two batches in memory, whatever its size, and a disk slower than the network slows the
download instead of filling memory.

The ingest may be touched again (its offset read, restarted, committed or closed) only once
the worker is idle: `flush` on the way out of a good stream, `settle` on any other way out.

A stream paced by a node's downlink comes in small chunks at the link's rate: a thread
hand-over per chunk would cost more than the hashing it moves, so `threaded=False` writes each
chunk at once, on the loop, behind the same interface.
"""

from __future__ import annotations

import asyncio
import threading

from kubesim_images.contentstore import BlobWriter

# Four socket reads' worth (asyncio reads at most 256 KiB at a time): big batches make the
# thread hand-over rare, and three blobs at a time still hold only tens of MiB at worst.
MAX_PENDING = 1 << 20


class WriteBehind:
    """Feeds one `BlobWriter` from a worker thread; use from the event loop only."""

    def __init__(
        self, ingest: BlobWriter, *, max_pending: int = MAX_PENDING, threaded: bool = True
    ) -> None:
        self._ingest = ingest
        self._threaded = threaded
        self._max_pending = max_pending
        self._batch: list[bytes] = []
        self._batched = 0
        self._inflight: asyncio.Future[None] | None = None
        self._idle = threading.Event()  # the worker is not touching the ingest
        self._idle.set()

    async def write(self, chunk: bytes) -> None:
        """Hand `chunk` over; raises what an earlier batch's write raised."""
        if not self._threaded:
            self._ingest.write(chunk)
            return
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._inflight is not None:
            if not self._inflight.done() and self._batched < self._max_pending:
                return  # the worker is busy: gather, it takes the lot next
            await self._inflight
        self._submit()

    async def flush(self) -> None:
        """Return once everything handed over is in the ingest (or raise its write's error)."""
        if self._inflight is not None:
            await self._inflight
        if self._batch:
            self._submit()
            assert self._inflight is not None  # noqa: S101 - just submitted
            await self._inflight

    def settle(self) -> None:
        """Wait, blocking, for the batch in the worker (at most `max_pending` bytes to write),
        and drop what was not handed over: the way out of a stream cut short or cancelled,
        where awaiting could be cancelled again and leave the worker writing into a closed
        or restarted ingest."""
        self._idle.wait()
        self._batch, self._batched = [], 0

    def _submit(self) -> None:
        batch, self._batch, self._batched = self._batch, [], 0
        self._idle.clear()
        inflight = asyncio.get_running_loop().run_in_executor(None, self._write, batch)
        # Retrieved even when nobody awaits it (a stream given up): no "never retrieved" noise.
        inflight.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._inflight = inflight

    def _write(self, batch: list[bytes]) -> None:
        try:
            for chunk in batch:
                self._ingest.write(chunk)
        finally:
            self._idle.set()
