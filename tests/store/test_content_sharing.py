"""Two writers of one blob, and a blob one pull found while another removes the image holding
it: each gets what it needs from the store, whatever the order of their steps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from contentkit import blobs_of, put_image

from kubesim_images.contentstore import ContentStore, Ingest


def test_a_writer_opening_the_ingest_as_another_commits_it_writes_its_own_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second writer opens the ingest name at the instant the first renames it into
    `blobs/`: it must not take over the file that is now the committed blob."""
    store = ContentStore(tmp_path, durable=False)
    data = b"manifest body" * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    first = store.open_ingest(digest, len(data))
    first.write(data)
    real_replace = Path.replace
    second: list[Ingest] = []

    def replace(path: Path, target: Path) -> Path:
        if not second:
            second.append(store.open_ingest(digest, len(data)))
        return real_replace(path, target)

    monkeypatch.setattr(Path, "replace", replace)
    first.commit()
    (ingest,) = second
    ingest.restart()
    ingest.write(data)
    ingest.commit()
    assert store.read_blob(digest) == data
    assert list(store.ingest_dir.iterdir()) == []
    store.close()


async def test_a_leased_blob_outlives_the_image_removed_under_it(tmp_path: Path) -> None:
    store = ContentStore(tmp_path, durable=False)
    image = put_image(store, "demo/app", 1, now=1.0e9)
    blobs = blobs_of(image)
    async with store.leased(blobs, sweep=True):
        store.remove(image.id)  # another pull of the image, done: its record dropped
        assert all(store.has_blob(digest) for digest in blobs)
        async with store.leased(blobs[:1], sweep=True):
            pass  # a lease ending while another holds the blob sweeps nothing
        assert all(store.has_blob(digest) for digest in blobs)
    assert not any(store.has_blob(digest) for digest in blobs)
    store.close()


async def test_a_lease_that_keeps_sweeps_nothing_and_images_keep_their_blobs(
    tmp_path: Path,
) -> None:
    store = ContentStore(tmp_path, durable=False)
    kept, other = put_image(store, "demo/app", 1, now=1.0e9), put_image(store, "demo/b", 2, 1.0)
    async with store.leased(blobs_of(other), sweep=False):
        store.remove(other.id)
    assert all(store.has_blob(digest) for digest in blobs_of(other))  # until a prune
    async with store.leased(blobs_of(kept), sweep=True):
        pass
    assert all(store.has_blob(digest) for digest in blobs_of(kept))  # its record holds them
    store.prune_blobs()
    shared = set(blobs_of(kept))
    assert not any(store.has_blob(d) for d in blobs_of(other) if d not in shared)
    store.close()
