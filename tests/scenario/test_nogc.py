"""The collector is paused while a scenario's large acyclic structures are built, and put back
as it was; the command line also freezes what parsing made, out of every later scan."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kubesim_images.scenario.nogc import no_cyclic_gc


@pytest.fixture(autouse=True)
def _collector_as_found() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_off_inside_and_as_it_was_after(enabled: bool) -> None:
    gc.enable() if enabled else gc.disable()
    frozen = gc.get_freeze_count()
    with no_cyclic_gc():
        assert not gc.isenabled()
    assert gc.isenabled() is enabled
    assert gc.get_freeze_count() == frozen


def test_freeze_moves_what_was_made_out_of_the_collectors_sight() -> None:
    gc.unfreeze()
    with no_cyclic_gc(freeze=True):
        made = [[] for _ in range(1000)]
    assert gc.get_freeze_count() >= len(made)
    assert gc.isenabled()
