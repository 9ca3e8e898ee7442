"""`lock_state_dir`: exclusive against everything, shared against shared, released on close."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubesim_images.state import StateDirInUse, lock_state_dir


def test_exclusive_refuses_every_other_holder_and_names_its_pid(tmp_path: Path) -> None:
    held = lock_state_dir(tmp_path)
    with pytest.raises(StateDirInUse) as refused:
        lock_state_dir(tmp_path)
    assert str(refused.value) == (
        f"state directory {tmp_path} is in use by another kubesim-images process "
        f"(pid {os.getpid()})"
    )
    with pytest.raises(StateDirInUse):
        lock_state_dir(tmp_path, shared=True)
    os.close(held)
    os.close(lock_state_dir(tmp_path))


def test_shared_holders_coexist_and_keep_a_daemon_out(tmp_path: Path) -> None:
    a = lock_state_dir(tmp_path, shared=True)
    b = lock_state_dir(tmp_path, shared=True)
    with pytest.raises(StateDirInUse):
        lock_state_dir(tmp_path)
    os.close(a)
    os.close(b)
    os.close(lock_state_dir(tmp_path))
