"""The state store keeps each node's images apart, and adopts a one-node state directory's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kubesim_images.state import StateStore


def test_each_node_has_its_own_images(tmp_path: Path) -> None:
    state = StateStore(tmp_path)
    state.put_image("a", "sha256:1", {"id": "sha256:1"})
    state.put_image("b", "sha256:1", {"id": "sha256:1", "size": 2})  # same image, other node
    state.put_image("b", "sha256:2", {"id": "sha256:2"})
    state.delete_image("a", "sha256:1")
    assert state.images("a") == []
    assert state.images("b") == [{"id": "sha256:1", "size": 2}, {"id": "sha256:2"}]
    state.close()


def test_a_one_node_directory_is_adopted_by_the_first_node_once(tmp_path: Path) -> None:
    StateStore(tmp_path).close()
    with sqlite3.connect(tmp_path / "state.db") as db:  # as the one-node daemon wrote it
        db.execute("INSERT INTO images (id, doc) VALUES ('sha256:1', '{\"id\":\"sha256:1\"}')")
    state = StateStore(tmp_path)
    state.adopt_images("kubesim-node")
    state.adopt_images("kubesim-node-1")  # nothing left to adopt
    assert state.images("kubesim-node") == [{"id": "sha256:1"}]
    assert state.images("kubesim-node-1") == []
    state.close()
