"""The pull queue's parts: FIFO gate, token bucket, cancellation leaving the queue consistent."""

from __future__ import annotations

import asyncio

import pytest

from kubesim_images.clock import run_virtual
from kubesim_images.errors import PullQPSExceededError, RegistryError
from kubesim_images.keyring import Credential
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.puller import FifoGate, ImagePuller, TokenBucket
from kubesim_images.reference import parse_normalized
from kubesim_images.registry.catalogue import Catalogue, make_image
from kubesim_images.registry.simulated import Fault, SimulatedRegistry
from kubesim_images.store import ImageStore

MI = 2**20


def _puller(config: KubeletConfig, *images: tuple[str, int], faults=(), bandwidth=100 * MI):
    catalogue = Catalogue(
        [make_image(parse_normalized(n).with_default_tag(), [(s, None)]) for n, s in images]
    )
    registry = SimulatedRegistry(catalogue, node_bandwidth=bandwidth, faults=faults)
    return ImagePuller("node-0", registry, ImageStore(), config), registry


class TestTokenBucket:
    def test_starts_full_and_refills_at_qps_up_to_burst(self):
        bucket = TokenBucket(qps=2, burst=3)
        assert [bucket.try_accept(0.0) for _ in range(4)] == [True, True, True, False]
        assert bucket.try_accept(0.5)  # one token back after 0.5 s at 2 qps
        assert not bucket.try_accept(0.5)
        assert [bucket.try_accept(100.0) for _ in range(4)] == [True, True, True, False]


class TestFifoGate:
    def test_admits_in_arrival_order_and_hands_slots_on(self):
        async def main():
            gate = FifoGate(1)
            order = []

            async def user(name):
                await gate.acquire()
                order.append(name)
                await asyncio.sleep(1)
                gate.release()

            await asyncio.gather(*(user(n) for n in "abcd"))
            return order, gate.holders, gate.waiting

        assert run_virtual(main()) == (["a", "b", "c", "d"], 0, 0)

    def test_cancelled_waiter_leaves_the_gate_consistent(self):
        async def main():
            gate = FifoGate(1)
            await gate.acquire()
            waiter = asyncio.ensure_future(gate.acquire())
            other = asyncio.ensure_future(gate.acquire())
            await asyncio.sleep(0)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            gate.release()  # the slot goes to `other`, not to the cancelled one
            await other
            gate.release()
            return gate.holders, gate.waiting

        assert run_virtual(main()) == (0, 0)

    def test_unlimited_never_waits(self):
        async def main():
            gate = FifoGate(None)
            for _ in range(100):
                await gate.acquire()
            return gate.holders

        assert run_virtual(main()) == 100


class TestImagePuller:
    def test_serial_pull_reports_pull_and_wait_durations(self):
        async def main():
            puller, _ = _puller(
                KubeletConfig(registry_pull_qps=0),
                ("example.com/a:v1", 100 * MI),
                ("example.com/b:v1", 50 * MI),
            )
            a, b = (parse_normalized(n) for n in ("example.com/a:v1", "example.com/b:v1"))
            first, second = await asyncio.gather(
                puller.pull(a, image="a", pod="p"), puller.pull(b, image="b", pod="q")
            )
            return (
                first.pull_seconds,
                first.waited_seconds,
                second.pull_seconds,
                second.waited_seconds,
                len(puller.store),
            )

        assert run_virtual(main()) == (1.0, 0.0, 0.5, 1.0, 2)

    def test_qps_refusal_happens_after_the_queue_and_releases_the_slot(self):
        async def main():
            puller, _ = _puller(
                KubeletConfig(registry_pull_qps=0.001, registry_burst=1),
                ("example.com/a:v1", MI),
                ("example.com/b:v1", MI),
            )
            a, b = (parse_normalized(n) for n in ("example.com/a:v1", "example.com/b:v1"))
            results = await asyncio.gather(
                puller.pull(a, image="a", pod="p"),
                puller.pull(b, image="b", pod="q"),
                return_exceptions=True,
            )
            return [type(r).__name__ for r in results], puller._gate.holders

        assert run_virtual(main()) == (["PullResult", "PullQPSExceededError"], 0)

    def test_cancelling_a_pull_in_flight_frees_its_bandwidth(self):
        async def main():
            puller, registry = _puller(
                KubeletConfig(serialize_image_pulls=False, registry_pull_qps=0),
                ("example.com/a:v1", 100 * MI),
                ("example.com/b:v1", 100 * MI),
            )
            a, b = (parse_normalized(n) for n in ("example.com/a:v1", "example.com/b:v1"))
            doomed = asyncio.ensure_future(puller.pull(a, image="a", pod="p"))
            survivor = asyncio.ensure_future(puller.pull(b, image="b", pod="q"))
            await asyncio.sleep(0.5)  # both at 50 MiB/s: 25 MiB each so far
            assert len(puller.in_flight) == 2
            progress = [puller.progress(pid) for pid in puller.in_flight]
            doomed.cancel()
            await asyncio.gather(doomed, return_exceptions=True)
            await survivor
            loop = asyncio.get_running_loop()
            return progress, loop.time(), registry.active_flows(), puller.in_flight

        progress, finished, flows, in_flight = run_virtual(main())
        assert progress == [(25 * MI, 100 * MI), (25 * MI, 100 * MI)]
        assert finished == pytest.approx(0.5 + 75 / 100)
        assert (flows, in_flight) == (0, {})

    def test_each_credential_is_tried_until_one_works(self):
        calls = []

        class Picky:
            async def pull(self, request):
                calls.append(request.credential.source if request.credential else None)
                if request.credential is None or request.credential.password != "right":
                    raise RegistryError("unauthorized", code="unauthorized")
                return await real.pull(request)

            def progress(self, pull_id):
                return None

        real = SimulatedRegistry(
            Catalogue([make_image(parse_normalized("example.com/a:v1"), [(MI, None)])])
        )

        async def main():
            puller = ImagePuller("n", Picky(), ImageStore(), KubeletConfig(registry_pull_qps=0))
            creds = [
                Credential("u", "wrong", source="secret/a"),
                Credential("u", "right", source="secret/b"),
            ]
            await puller.pull(
                parse_normalized("example.com/a:v1"), image="a", pod="p", credentials=creds
            )
            with pytest.raises(RegistryError, match=r"^\[unauthorized, unauthorized\]$"):
                await puller.pull(
                    parse_normalized("example.com/a:v1"),
                    image="a",
                    pod="p",
                    credentials=creds[:1] * 2,
                )

        run_virtual(main())
        assert calls == ["secret/a", "secret/b", "secret/a", "secret/a"]

    def test_fault_after_the_round_trip(self):
        async def main():
            ref = parse_normalized("example.com/a:v1")
            catalogue = Catalogue([make_image(ref, [(MI, None)])])
            registry = SimulatedRegistry(
                catalogue, latency=0.3, faults=[Fault(error="timeout", image=ref)]
            )
            puller = ImagePuller("n", registry, ImageStore(), KubeletConfig(registry_pull_qps=0))
            with pytest.raises(RegistryError) as info:
                await puller.pull(ref, image="a", pod="p")
            return info.value.unavailable, asyncio.get_running_loop().time()

        assert run_virtual(main()) == (True, 0.3)


def test_qps_error_text():
    assert str(PullQPSExceededError()) == "pull QPS exceeded"
