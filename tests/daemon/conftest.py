"""The daemon served in-process, as the HTTP API tests serve it (tests/api/conftest.py), with
their helpers (apikit): its folder is importable whether or not pytest collected it first."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))

from api.conftest import api as api  # noqa: PLC0414 - re-exported as a fixture
from api.conftest import client as client  # noqa: PLC0414 - re-exported as a fixture
