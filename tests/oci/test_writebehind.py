"""A blob's chunks hashed and written by a worker thread: in order, off the loop, with the
reader held back once a bounded amount waits, errors surfacing on the reader's side, and the
ingest left alone by the worker once a stream gives up."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

import pytest

from kubesim_images.contentstore import ContentError, ContentStore
from kubesim_images.oci.writebehind import WriteBehind


class GatedWriter:
    """A `BlobWriter` that records which thread wrote what, and can hold the worker."""

    def __init__(self) -> None:
        self.offset = 0
        self.chunks: list[bytes] = []
        self.threads: set[int] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # the worker is inside `write`
        self.inside = False

    def write(self, chunk: bytes, /) -> None:
        self.inside = True
        self.entered.set()
        self.gate.wait()
        self.threads.add(threading.get_ident())
        self.chunks.append(chunk)
        self.offset += len(chunk)
        self.inside = False

    def restart(self) -> None:
        raise AssertionError("not used")

    def commit(self) -> None:
        raise AssertionError("not used")

    def close(self) -> None:
        raise AssertionError("not used")


async def test_chunks_land_in_order_from_a_worker_thread() -> None:
    writer = GatedWriter()
    behind = WriteBehind(writer, max_pending=10)
    chunks = [bytes([i]) * (i + 1) for i in range(40)]
    for chunk in chunks:
        await behind.write(chunk)
    await behind.flush()
    assert b"".join(writer.chunks) == b"".join(chunks)
    assert writer.offset == sum(map(len, chunks))
    assert threading.get_ident() not in writer.threads


async def test_the_reader_waits_once_max_pending_bytes_are_gathered() -> None:
    writer = GatedWriter()
    writer.gate.clear()  # the worker takes the first chunk and stays in it
    behind = WriteBehind(writer, max_pending=100)
    await behind.write(b"a" * 10)  # handed straight to the idle worker
    await asyncio.to_thread(writer.entered.wait)
    await behind.write(b"b" * 60)  # gathered: under the bound, the reader goes on
    blocked = asyncio.create_task(behind.write(b"c" * 40))  # 100 gathered: the bound
    for _ in range(5):
        await asyncio.sleep(0)
    assert not blocked.done()  # held until the worker is free, whatever time passes
    assert writer.chunks == []
    writer.gate.set()
    await blocked
    await behind.flush()
    assert b"".join(writer.chunks) == b"a" * 10 + b"b" * 60 + b"c" * 40


async def test_an_ingest_error_reaches_the_reader(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    ingest = store.open_ingest("sha256:" + hashlib.sha256(b"ab").hexdigest(), 2)
    behind = WriteBehind(ingest)
    await behind.write(b"abc")  # one byte more than the descriptor's size
    with pytest.raises(ContentError, match="unexpected size 3"):
        await behind.flush()
    behind.settle()
    ingest.close()
    store.close()


async def test_settle_waits_for_the_worker_after_a_cancelled_write() -> None:
    writer = GatedWriter()
    writer.gate.clear()
    behind = WriteBehind(writer, max_pending=1)
    await behind.write(b"first")  # in the worker, held at the gate
    await asyncio.to_thread(writer.entered.wait)
    reader = asyncio.create_task(behind.write(b"second"))  # waits for the worker
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert writer.inside
    opener = threading.Thread(target=writer.gate.set)
    opener.start()
    behind.settle()  # blocks until the worker has left the ingest
    opener.join()
    assert not writer.inside
    assert writer.chunks == [b"first"]  # what was never handed over is dropped


async def test_unthreaded_writes_each_chunk_at_once_on_the_loop() -> None:
    writer = GatedWriter()
    behind = WriteBehind(writer, threaded=False)
    await behind.write(b"one")
    assert writer.chunks == [b"one"]  # already in the ingest, no flush needed
    await behind.write(b"two")
    await behind.flush()
    behind.settle()
    assert writer.chunks == [b"one", b"two"]
    assert writer.threads == {threading.get_ident()}
