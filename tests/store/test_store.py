"""The node's image store: presence by tag or digest, shared layers, moving tags, removal, disk."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from kubesim_images.reference import parse_normalized
from kubesim_images.store import ImageRecord, ImageStore, Layer, NoSpaceLeftError

L1, L2, L3 = (Layer(f"sha256:{c * 64}", n) for c, n in (("1", 10), ("2", 20), ("3", 30)))
DIGEST = "sha256:" + "d" * 64


def _record(image_id, layers, tags=(), digests=()):
    return ImageRecord(
        id=image_id, layers=tuple(layers), repo_tags=list(tags), repo_digests=list(digests)
    )


def test_lookup_by_tag_and_by_digest():
    store = ImageStore()
    store.add(
        _record(
            "sha256:a",
            [L1, L2],
            ["docker.io/library/nginx:1.27"],
            [f"docker.io/library/nginx@{DIGEST}"],
        ),
        None,
        0.0,
    )
    assert store.lookup(parse_normalized("nginx:1.27")).id == "sha256:a"
    assert store.lookup(parse_normalized(f"nginx@{DIGEST}")).id == "sha256:a"
    assert store.lookup(parse_normalized(f"nginx:other@{DIGEST}")).id == "sha256:a"
    assert store.lookup(parse_normalized("nginx:1.28")) is None
    assert store.lookup(parse_normalized("nginx")) is None


def test_shared_layers_are_counted_once_and_kept_until_unreferenced():
    store = ImageStore()
    store.add(_record("sha256:a", [L1, L2], ["x/a:1"]), None, 0.0)
    store.add(_record("sha256:b", [L1, L3], ["x/b:1"]), None, 0.0)
    assert store.missing_layers([L1, L2, L3, L3]) == []
    assert store.bytes_used == 60
    store.remove("sha256:a")
    assert store.has_layer(L1.digest)
    assert not store.has_layer(L2.digest)
    assert store.bytes_used == 40


def test_a_tag_moves_to_the_newer_image():
    store = ImageStore()
    store.add(_record("sha256:old", [L1], ["docker.io/library/app:latest"]), None, 0.0)
    store.add(_record("sha256:new", [L2], ["docker.io/library/app:latest"]), None, 5.0)
    assert store.lookup(parse_normalized("app")).id == "sha256:new"
    assert store.get("sha256:old").repo_tags == []


def test_last_used_is_updated_by_add_and_touch():
    store = ImageStore()
    store.add(_record("sha256:a", [L1], ["x/a:1"]), None, 1.0)
    store.touch("sha256:a", 9.0)
    assert store.get("sha256:a").last_used == 9.0


def test_unreferenced_downloaded_layers_count_as_present():
    store = ImageStore()
    store.add_layers([L1])
    assert store.missing_layers([L1, L2]) == [L2]


class TestImageFilesystem:
    """The store as the node's image filesystem: usage, capacity and a full disk."""

    def test_usage_is_other_writers_plus_distinct_layers(self):
        store = ImageStore(capacity=1000, other_usage=100)
        store.add(_record("sha256:a", [L1, L2], ["x/a:1"]), None, 0.0)
        store.add(_record("sha256:b", [L1, L3], ["x/b:1"]), None, 0.0)
        assert (store.bytes_used, store.usage) == (60, 160)
        stats = store.image_fs_stats()
        assert (stats.capacity, stats.available) == (1000, 840)

    def test_layers_that_do_not_fit_are_refused_whole_with_containerds_error(self):
        store = ImageStore(capacity=100, other_usage=60)
        store.add_layers([L1])  # 70 of 100
        with pytest.raises(NoSpaceLeftError) as exc:
            store.add_layers([L1, L2, L3])  # L2 would make 90, L3 120
        # The ingest directory is the digest of containerd's ref key "layer-<digest>".
        ingest = hashlib.sha256(f"layer-{L3.digest}".encode()).hexdigest()
        assert str(exc.value) == (
            f"write /var/lib/containerd/io.containerd.content.v1.content/ingest/{ingest}/data: "
            "no space left on device"
        )
        assert not store.has_layer(L2.digest)
        assert store.usage == 70
        store.add_layers([L2])  # exactly 90: fits
        assert store.usage == 90

    def test_without_capacity_everything_fits(self):
        store = ImageStore()
        store.add_layers([Layer("sha256:" + "9" * 64, 1 << 50)])
        assert store.image_fs_stats().available > 0

    def test_remove_image_reports_the_bytes_released(self):
        store = ImageStore(capacity=1000)
        store.add(_record("sha256:a", [L1, L2], ["x/a:1"]), None, 0.0)
        store.add(_record("sha256:b", [L1, L3], ["x/b:1"]), None, 0.0)
        assert store.remove_image("sha256:a") == 20  # L1 is still b's
        assert store.remove_image("sha256:a") == 0
        assert store.remove_image("sha256:b") == 40
        assert store.usage == 0

    def test_images_named_by_a_pinned_reference_are_pinned(self):
        store = ImageStore(pinned=["registry.k8s.io/pause:3.10"])
        store.add(_record("sha256:p", [L1], ["registry.k8s.io/pause:3.10"]), None, 0.0)
        store.add(_record("sha256:a", [L2], ["x/a:1"]), None, 0.0)
        assert {image.id: image.pinned for image in store.list_images()} == {
            "sha256:p": True,
            "sha256:a": False,
        }

    def test_an_image_stored_again_after_gc_removed_it_is_a_re_pull(self):
        store = ImageStore()
        store.add(_record("sha256:a", [L1], ["x/a:1"]), None, 0.0)
        store.add(_record("sha256:b", [L2], ["x/b:1"]), None, 0.0)
        store.remove_image("sha256:a")  # image GC
        store.remove("sha256:b")  # a user's rmi: not GC
        store.add(_record("sha256:b", [L2], ["x/b:1"]), None, 1.0)
        assert store.re_pulls == 0
        store.add(_record("sha256:a", [L1], ["x/a:1"]), None, 1.0)
        store.add(_record("sha256:a", [L1], ["x/a:1"]), None, 2.0)  # already there again
        assert store.re_pulls == 1


def test_a_fresh_copy_is_the_record_its_constructor_makes_with_no_names():
    """The store's copy of a pulled image is set field by field: every field, none missed."""
    pulled = _record("sha256:a", [L1, L2, L1], ["docker.io/library/nginx:1.27"], [DIGEST])
    pulled.pinned = True
    copy = pulled.fresh_copy(42)
    made = ImageRecord(id="sha256:a", layers=pulled.layers, last_used=42, pinned=True)
    assert copy == made
    assert [getattr(copy, f.name) for f in dataclasses.fields(ImageRecord)] == [
        getattr(made, f.name) for f in dataclasses.fields(ImageRecord)
    ]
    assert copy.size == 40
    assert copy.repo_tags == []
    assert copy.repo_tags is not pulled.repo_tags
