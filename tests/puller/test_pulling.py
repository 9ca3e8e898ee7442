"""One pull against a backend: the puller decides what is missing, the store shares layers in
flight, and commits; backends only resolve and fetch (the narrow contract of `registry.base`)."""

from __future__ import annotations

import asyncio

import pytest

from kubesim_images.clock import run_virtual
from kubesim_images.errors import RegistryError
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.puller import ImagePuller
from kubesim_images.pulling import pull
from kubesim_images.reference import parse_normalized
from kubesim_images.registry.base import CallbackBackend, PullRequest
from kubesim_images.registry.catalogue import Catalogue, make_image
from kubesim_images.registry.simulated import SimulatedRegistry
from kubesim_images.store import ImageStore

MI = 2**20
BASE = "sha256:" + "b" * 64  # a layer both images share


def _registry() -> SimulatedRegistry:
    return SimulatedRegistry(
        Catalogue(
            [
                make_image(parse_normalized("example.com/a:v1"), [(10 * MI, BASE), (MI, None)]),
                make_image(parse_normalized("example.com/b:v1"), [(10 * MI, BASE), (2 * MI, None)]),
            ]
        ),
        latency=0.5,
        node_bandwidth=10 * MI,
    )


class CoroutineOnly:
    """The simulated registry behind the coroutine half of the contract only (no callbacks),
    as a real backend is; records every fetch it is asked for."""

    def __init__(self, real: SimulatedRegistry) -> None:
        self.real = real
        self.fetched: list[list[str]] = []

    async def resolve(self, request):
        return await self.real.resolve(request)

    async def fetch(self, request, manifest, layers, sink):
        self.fetched.append([layer.digest for layer in layers])
        await self.real.fetch(request, manifest, layers, sink)

    def progress(self, pull_id):
        return self.real.progress(pull_id)


class TestStoreSharesLayersInFlight:
    """Two pulls needing the same layer on one node download it once (containerd's content
    store does the same with its ingest locks)."""

    @pytest.mark.parametrize("callbacks", [True, False])
    def test_a_shared_layer_is_fetched_once(self, callbacks):
        registry = _registry()
        backend = registry if callbacks else CoroutineOnly(registry)
        assert isinstance(backend, CallbackBackend) == callbacks
        store = ImageStore()

        async def main():
            loop = asyncio.get_running_loop()
            a = pull(
                backend, store, None, PullRequest(1, "n", parse_normalized("example.com/a:v1"))
            )
            b = pull(
                backend, store, None, PullRequest(2, "n", parse_normalized("example.com/b:v1"))
            )
            records = await asyncio.gather(a, b)
            return records, loop.time()

        (a, b), finished = run_virtual(main())
        # a fetches base + its own 1 MiB; b fetches only its own 2 MiB and waits for the base.
        assert registry.bytes_sent == 13 * MI
        assert store.bytes_used == 13 * MI
        assert store.missing_layers(a.layers + b.layers) == []
        # 0.5 s round trips, then 13 MiB on a 10 MiB/s downlink, shared: done at 1.8 s.
        assert finished == pytest.approx(1.8)
        if not callbacks:
            assert sorted(map(len, backend.fetched)) == [1, 2]  # the base only once

    def test_a_cancelled_fetch_is_taken_over_by_the_pull_still_waiting(self):
        registry = _registry()
        backend = CoroutineOnly(registry)
        store = ImageStore()

        async def main():
            a = asyncio.ensure_future(
                pull(
                    backend, store, None, PullRequest(1, "n", parse_normalized("example.com/a:v1"))
                )
            )
            b = asyncio.ensure_future(
                pull(
                    backend, store, None, PullRequest(2, "n", parse_normalized("example.com/b:v1"))
                )
            )
            await asyncio.sleep(1.0)  # both resolved; a is fetching the base, b waits on it
            assert store.fetching(BASE) is not None
            a.cancel()
            record = await b
            with pytest.raises(asyncio.CancelledError):
                await a
            return record

        record = run_virtual(main())
        assert [len(f) for f in backend.fetched] == [2, 1, 1]  # b fetched the base after all
        assert store.fetching(BASE) is None
        assert store.has_layer(BASE)
        assert store.missing_layers(record.layers) == []


class TestPullerCommits:
    """The backend never sees the node's store; the puller commits what was fetched."""

    def test_the_request_carries_no_store_and_the_store_gets_the_image(self):
        seen: list[PullRequest] = []
        registry = _registry()

        class Spy(CoroutineOnly):
            async def resolve(self, request):
                seen.append(request)
                return await super().resolve(request)

        async def main():
            store = ImageStore()
            puller = ImagePuller("n", Spy(registry), store, KubeletConfig(registry_pull_qps=0))
            result = await puller.pull(parse_normalized("example.com/a:v1"), image="a", pod="p")
            return store, result

        store, result = run_virtual(main())
        assert not hasattr(seen[0], "store")
        assert store.get(result.record.id) is result.record
        assert store.bytes_used == 11 * MI

    def test_no_space_is_containerds_error_and_keeps_nothing(self):
        async def main():
            store = ImageStore(capacity=5 * MI)
            request = PullRequest(1, "n", parse_normalized("example.com/a:v1"))
            try:
                await pull(_registry(), store, None, request)
            finally:
                assert store.bytes_used == 0
                assert store.fetching(BASE) is None

        with pytest.raises(
            RegistryError, match=r"failed to copy: write .*: no space left on device$"
        ):
            run_virtual(main())
