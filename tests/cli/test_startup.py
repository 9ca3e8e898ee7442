"""A command's imports run without the cyclic collector, and what they made is frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kubesim_images.startup import imports_without_gc


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()  # the test process's objects are collectable again
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_inside_and_what_exists_is_frozen_after() -> None:
    gc.enable()
    gc.unfreeze()
    with imports_without_gc():
        assert not gc.isenabled()
        made = [[] for _ in range(10)]  # lists: objects the collector tracks
    assert gc.isenabled()
    # Frozen objects are in no generation the collector walks (nor lists).
    walked = {id(o) for o in gc.get_objects()}
    assert not walked & {id(o) for o in [made, *made]}
    assert gc.get_freeze_count() >= len(made) + 1


def test_a_collector_turned_off_by_the_caller_stays_off() -> None:
    gc.disable()
    with imports_without_gc():
        pass
    assert not gc.isenabled()


def test_the_collector_is_back_after_a_failed_import() -> None:
    gc.enable()
    with pytest.raises(ModuleNotFoundError), imports_without_gc():
        import kubesim_images.no_such_module  # type: ignore[import-not-found]  # noqa: F401, PLC0415
    assert gc.isenabled()
