"""The node's image store: presence by tag or digest, shared layers, moving tags, removal."""

from __future__ import annotations

from kubesim_images.reference import parse_normalized
from kubesim_images.store import ImageRecord, ImageStore, Layer

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
