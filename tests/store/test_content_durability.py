"""What the content store asks of the disk: a blob's writeback started as it grows (so its
fsync before the rename has little left), and the blobs directory fsynced once before the
record that names the renamed blobs, not once per blob; nothing of the kind when not durable."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from contentkit import put_blob, put_image

from kubesim_images import contentstore
from kubesim_images.contentstore import ContentStore

MI = 1 << 20


@pytest.fixture
def fadvised(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """The (offset, length, advice) of each posix_fadvise the store makes, passed through."""
    calls: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append((offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(contentstore, "_fadvise", record)
    return calls


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = ContentStore.sync_dir

    def record(directory: Path) -> None:
        calls.append(directory)
        real(directory)

    monkeypatch.setattr(ContentStore, "sync_dir", staticmethod(record))
    return calls


def test_writeback_starts_every_8_mib_of_a_durable_blob(
    tmp_path: Path, fadvised: list[tuple[int, int, int]]
) -> None:
    store = ContentStore(tmp_path)
    data = os.urandom(MI) * 20
    ingest = store.open_ingest("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    for start in range(0, len(data), 3 * MI):  # chunks that do not align with 8 MiB
        ingest.write(data[start : start + 3 * MI])
    ingest.commit()
    dontneed = os.POSIX_FADV_DONTNEED
    # 9 MiB written when the first 8 MiB are passed, then 18: each call covers the new bytes.
    assert fadvised == [(0, 9 * MI, dontneed), (9 * MI, 9 * MI, dontneed)]
    assert store.blob_path(ingest.digest).read_bytes() == data
    store.close()


def test_a_store_that_keeps_nothing_asks_nothing_of_the_disk(
    tmp_path: Path, fadvised: list[tuple[int, int, int]], synced: list[Path]
) -> None:
    store = ContentStore(tmp_path, durable=False)
    put_blob(store, os.urandom(MI) * 10)
    put_image(store, "r/app:v1", 1, now=1.0)
    assert fadvised == []
    assert synced == []
    store.close()


def test_the_blobs_directory_is_synced_once_per_record(tmp_path: Path, synced: list[Path]) -> None:
    store = ContentStore(tmp_path)
    image = put_image(store, "r/app:v1", 1, now=1.0)  # four blobs renamed, then the record
    assert synced == [store.blobs_dir]
    store.commit_image(image, [image.config])  # nothing renamed since: nothing to sync
    assert synced == [store.blobs_dir]
    put_image(store, "r/app:v2", 2, now=2.0)
    assert synced == [store.blobs_dir, store.blobs_dir]
    store.close()
