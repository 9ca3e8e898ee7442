"""Fixtures for the HTTP API tests: the daemon's app served in-process over a fresh state dir.

`api` is a factory: `client = await api(registry={...}, token="t")` parses the fast test config
(apikit.config_document) with the given sections, restores a `Cluster` over
`StateStore(tmp_path / ...)`, serves `make_app(...)` on an aiohttp `TestServer` and returns a
`TestClient`. Teardown closes every client, then awaits `cluster.stop()` and closes the store,
so no pod worker or handler task outlives the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from apikit import ApiFactory, Client, config_document

from kubesim_images.daemon.api import READY, make_app
from kubesim_images.daemon.cluster import Cluster
from kubesim_images.daemon.config import parse_config
from kubesim_images.daemon.resources import RESOURCES, Resource
from kubesim_images.metrics import Metrics
from kubesim_images.state import StateStore


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiFactory]:
    started: list[tuple[Client, Cluster, StateStore]] = []

    async def factory(
        *,
        token: str | None = None,
        max_body_bytes: int | None = None,
        resources: tuple[Resource, ...] = RESOURCES,
        **sections: Any,
    ) -> Client:
        config = parse_config(config_document(**sections), source="<test>")
        state = StateStore(tmp_path / f"state-{len(started)}")
        metrics = Metrics()
        cluster = Cluster(config, state, metrics, resources=resources)
        app = make_app(
            cluster,
            metrics,
            token=token,
            max_body_bytes=config.max_body_bytes if max_body_bytes is None else max_body_bytes,
        )
        client = TestClient(TestServer(app))
        started.append((client, cluster, state))
        await client.start_server()
        cluster.restore()
        app[READY].set()
        return client

    yield factory
    for client, cluster, state in reversed(started):
        await client.close()
        await cluster.stop()
        state.close()


@pytest_asyncio.fixture
async def client(api: ApiFactory) -> Client:
    """The default daemon: bundled catalogue, fast timing, no token."""
    return await api()
