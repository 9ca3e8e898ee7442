"""The pull queue's parts: FIFO gate, token bucket, cancellation leaving the queue consistent."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import pytest

from kubesim_images.clock import run_virtual
from kubesim_images.credentials import StaticCredentials
from kubesim_images.errors import PullQPSExceededError, RegistryError
from kubesim_images.keyring import Credential
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.puller import FifoGate, ImagePuller, TokenBucket
from kubesim_images.reference import parse_normalized
from kubesim_images.registry.catalogue import Catalogue, make_image
from kubesim_images.registry.simulated import Fault, SimulatedRegistry
from kubesim_images.scheduler import EventCore
from kubesim_images.store import ImageStore

MI = 2**20


def _puller(config: KubeletConfig, *images: tuple[str, int], faults=(), bandwidth=100 * MI):
    catalogue = Catalogue(
        [make_image(parse_normalized(n).with_default_tag(), [(s, None)]) for n, s in images]
    )
    registry = SimulatedRegistry(catalogue, node_bandwidth=bandwidth, faults=faults)
    return ImagePuller("node-0", registry, ImageStore(), config), registry


S = 1_000_000_000  # one second in the engine's nanoseconds


class TestTokenBucket:
    def test_starts_full_and_refills_at_qps_up_to_burst(self):
        bucket = TokenBucket(qps=2, burst=3)
        assert [bucket.try_accept(0) for _ in range(4)] == [True, True, True, False]
        assert not bucket.try_accept(S // 2 - 1)  # a refused request leaves the bucket as is
        assert bucket.try_accept(S // 2)  # one token back after 0.5 s at 2 qps
        assert not bucket.try_accept(S // 2)
        assert [bucket.try_accept(100 * S) for _ in range(4)] == [True, True, True, False]

    def test_elapsed_is_whole_nanoseconds_as_x_time_rate(self):
        # One second between 15.06 s and 16.06 s, exactly; in float seconds it is a hair less.
        bucket = TokenBucket(qps=1, burst=1)
        assert bucket.try_accept(15_060_000_000)
        assert bucket.try_accept(16_060_000_000)
        assert not bucket.try_accept(17_059_999_999)

    def test_the_limit_is_a_float32_as_the_kubelet_passes_it(self):
        # float32(0.1) is 0.10000000149..., so 9.9999999 s refill a whole token; at a float64
        # 0.1 they would refill 0.99999999 of one.
        bucket = TokenBucket(qps=0.1, burst=1)
        assert bucket.try_accept(0)
        assert bucket.try_accept(9_999_999_900)


class Waiter:
    """A gate's waiter: `admit` is called when its turn comes."""

    def __init__(self, admit: Callable[[], object]) -> None:
        self.admit = admit


class TestFifoGate:
    """The gate on the lean event core: slots handed on in arrival order, one turn later."""

    def test_admits_in_arrival_order_and_hands_slots_on(self) -> None:
        core = EventCore()
        gate = FifoGate(1, core)
        order: list[tuple[str, int]] = []

        def admitted(name: str) -> None:
            order.append((name, core.now_ns))
            core.call_at(core.now_ns + S, gate.release)  # holds the slot for a second

        for name in "abcd":
            if gate.try_acquire():
                admitted(name)
            else:
                gate.enqueue(Waiter(functools.partial(admitted, name)))
        core.run()
        assert order == [("a", 0), ("b", S), ("c", 2 * S), ("d", 3 * S)]
        assert (gate.holders, gate.waiting) == (0, 0)

    def test_a_withdrawn_waiter_leaves_the_gate_consistent(self) -> None:
        core = EventCore()
        gate = FifoGate(1, core)
        seen: list[str] = []
        assert gate.try_acquire()
        waiter = Waiter(functools.partial(seen.append, "withdrawn"))
        other = Waiter(functools.partial(seen.append, "other"))
        gate.enqueue(waiter)
        gate.enqueue(other)
        assert gate.discard(waiter)
        gate.release()  # the slot goes to `other`, not to the withdrawn one
        core.run()
        assert seen == ["other"]
        assert not gate.discard(other)  # already handed its slot
        gate.release()
        assert (gate.holders, gate.waiting) == (0, 0)

    def test_unlimited_never_waits(self) -> None:
        gate = FifoGate(None, EventCore())
        assert all(gate.try_acquire() for _ in range(100))
        assert gate.holders == 100


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
                first.pull_ns / S,
                first.waited_ns / S,
                second.pull_ns / S,
                second.waited_ns / S,
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

    @pytest.mark.parametrize("when", ["queued", "admitted"])
    def test_cancelling_a_queued_pull_passes_its_turn_on(self, when, monkeypatch):
        """Cancelled while waiting for its slot, or after the slot was handed to it but before
        its pull started: either way the next pull gets the slot and nothing stays listed."""

        async def main():
            puller, _ = _puller(
                KubeletConfig(registry_pull_qps=0),
                ("example.com/a:v1", 100 * MI),
                ("example.com/b:v1", 100 * MI),
                ("example.com/c:v1", 100 * MI),
            )
            a, b, c = (parse_normalized(f"example.com/{n}:v1") for n in "abc")
            first = asyncio.ensure_future(puller.pull(a, image="a", pod="p"))
            doomed = asyncio.ensure_future(puller.pull(b, image="b", pod="q"))
            last = asyncio.ensure_future(puller.pull(c, image="c", pod="r"))
            await asyncio.sleep(0.5)
            assert len(puller.waiting) == 2
            if when == "queued":
                doomed.cancel()
            else:
                gate = puller._gate
                release = FifoGate.release

                def release_then_cancel(self):
                    release(self)  # the slot is on its way to `doomed`...
                    if self is gate:
                        doomed.cancel()  # ...which is cancelled before it can start
                        monkeypatch.setattr(FifoGate, "release", release)

                monkeypatch.setattr(FifoGate, "release", release_then_cancel)
            await first
            result = await last
            await asyncio.gather(doomed, return_exceptions=True)
            return (
                doomed.cancelled(),
                result.waited_ns / S,
                result.pull_ns / S,
                puller.waiting,
                puller.in_flight,
                puller._gate.holders,
                sorted(puller.store.lookup(r) is not None for r in (a, b, c)),
            )

        cancelled, waited, pulled, waiting, in_flight, holders, present = run_virtual(main())
        assert cancelled
        assert (waited, pulled) == (1.0, 1.0)  # c started the moment a finished
        assert (waiting, in_flight, holders) == ({}, {}, 0)
        assert present == [False, True, True]

    def test_each_credential_is_tried_until_one_works(self):
        calls = []

        class Picky:
            """A coroutine-only backend (no callbacks) in front of the simulated registry."""

            async def resolve(self, request):
                calls.append(request.credential.source if request.credential else None)
                if request.credential is None or request.credential.password != "right":
                    raise RegistryError("unauthorized", code="unauthorized")
                return await real.resolve(request)

            async def fetch(self, request, manifest, layers, sink):
                await real.fetch(request, manifest, layers, sink)

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
                parse_normalized("example.com/a:v1"),
                image="a",
                pod="p",
                credentials=StaticCredentials(creds),
            )
            # utilerrors.NewAggregate prints one distinct message once, without brackets.
            with pytest.raises(RegistryError, match=r"^unauthorized$"):
                await puller.pull(
                    parse_normalized("example.com/a:v1"),
                    image="a",
                    pod="p",
                    credentials=StaticCredentials(creds[:1] * 2),
                )

        run_virtual(main())
        assert calls == ["secret/a", "secret/b", "secret/a", "secret/a"]

    def test_cri_errors_read_as_the_1_32_kubelet_prints_them(self):
        class Scripted:
            """Answers each pull with the next scripted error, as a container runtime would."""

            def __init__(self, errors):
                self.errors = list(errors)

            async def resolve(self, request):
                raise self.errors.pop(0)

            async def fetch(self, request, manifest, layers, sink):
                raise AssertionError("a failed resolve fetches nothing")

            def progress(self, pull_id):
                return None

        unknown = "rpc error: code = Unknown desc = "
        unavailable = "RegistryUnavailable: dial tcp: i/o timeout"
        creds = [Credential("u", "p1", source="a"), Credential("u", "p2", source="b")]
        cases = [
            # code Unknown loses its gRPC prefix (remote_image.go); other codes keep theirs
            ([RegistryError(unknown + "denied")], "denied", False),
            ([RegistryError("rpc error: code = NotFound desc = x")], None, False),
            # NewAggregate: distinct messages bracketed, identical ones printed once
            (
                [RegistryError(unknown + "denied"), RegistryError("rpc error: code = NotFound")],
                "[denied, rpc error: code = NotFound]",
                False,
            ),
            ([RegistryError(unknown + "denied")] * 2, "denied", False),
            # evalCRIPullErr judges the printed text: only a lone RegistryUnavailable stays one
            ([RegistryError(unavailable, unavailable=True)] * 2, unavailable, True),
            (
                [RegistryError(unavailable, unavailable=True), RegistryError("other")],
                f"[{unavailable}, other]",
                False,
            ),
        ]

        async def main():
            seen = []
            for errors, _, _ in cases:
                puller = ImagePuller(
                    "n", Scripted(errors), ImageStore(), KubeletConfig(registry_pull_qps=0)
                )
                with pytest.raises(RegistryError) as caught:
                    await puller.pull(
                        parse_normalized("example.com/a:v1"),
                        image="a",
                        pod="p",
                        credentials=StaticCredentials(creds[: len(errors)]),
                    )
                seen.append((str(caught.value), caught.value.unavailable))
            return seen

        expected = [
            (text if text is not None else str(errors[0]), flag) for errors, text, flag in cases
        ]
        assert run_virtual(main()) == expected

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


class _BrokenListener:
    """A store whose write-through fails once (a disk error while saving the first image)."""

    def __init__(self) -> None:
        self.failed = False

    def image_changed(self, record: object) -> None:
        if not self.failed:
            self.failed = True
            raise OSError("disk I/O error")

    def image_removed(self, image_id: str) -> None:
        pass


def test_a_pull_whose_image_cannot_be_saved_still_passes_its_slot_on() -> None:
    """The error reaches the loop's handler, and the next pull in a serial queue still runs."""

    async def main() -> tuple[list[object], bool, int]:
        loop = asyncio.get_running_loop()
        errors: list[object] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
        puller, _ = _puller(
            KubeletConfig(registry_pull_qps=0),
            ("example.com/a:v1", 100 * MI),
            ("example.com/b:v1", 50 * MI),
        )
        puller.store.listener = _BrokenListener()
        first = asyncio.ensure_future(
            puller.pull(parse_normalized("example.com/a:v1"), image="a", pod="p")
        )
        await asyncio.sleep(0)  # the first pull takes the slot; its image is the one not saved
        second = await puller.pull(parse_normalized("example.com/b:v1"), image="b", pod="q")
        first.cancel()
        return (
            errors,
            second.record.id == puller.store.lookup(parse_normalized("example.com/b:v1")).id,
            len(puller.in_flight),
        )

    errors, second_stored, in_flight = run_virtual(main())
    assert [str(e) for e in errors] == ["disk I/O error"]
    assert second_stored
    assert in_flight == 0
