"""The lean event core scenarios run on, and its one rule for ties, against asyncio's loop.

`EventCore` must decide every tie as the daemon's loop (`LoopScheduler` over asyncio) decides
it: the same kubelet steps run on both, so a scenario's answer cannot depend on which drives it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kubesim_images.clock import run_virtual
from kubesim_images.scenario.model import VariantSpec, load_document, load_file
from kubesim_images.scenario.runner import VariantResult, _simulate_on_loop, _simulate_virtual
from kubesim_images.scheduler import EventCore, LoopScheduler, Scheduler, Timer

S = 1_000_000_000
ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "config" / "scenarios").glob("*.yaml"))


def script(scheduler: Scheduler, log: list[tuple[int, str]]) -> None:
    """Timers and callbacks that tie at non-round instants, set off from timers and callbacks
    alike: what the pod workers, the pull queue and the registry do to each other."""
    t = 1_234_567_891  # 1.234567891 s

    def note(what: str) -> None:
        log.append((scheduler.now_ns, what))

    def chain(name: str) -> None:
        note(name)
        scheduler.call_soon(note, f"{name}+soon")
        # Due now: it runs after what was queued before this turn's end (asyncio's turns).
        scheduler.call_at(scheduler.now_ns, note, f"{name}+timer-now")

    for name in ("a", "b", "c"):
        scheduler.call_at(t, chain, name)
    scheduler.call_at(t + 1, note, "one ns later")
    scheduler.call_at(t, note, "d, scheduled last for the same instant")
    cancelled = scheduler.call_at(t, note, "never")
    cancelled.cancel()
    # Cancelled by a timer of its own instant, once both are due: skipped, as asyncio skips a
    # handle cancelled after it was made ready.
    doomed: list[Timer] = []

    def cancel_doomed() -> None:  # scheduled first, so it runs first
        doomed[0].cancel()

    scheduler.call_at(t + 2, cancel_doomed)
    doomed.append(scheduler.call_at(t + 2, note, "never: cancelled in the turn it fell due"))
    scheduler.call_at(t + 2, note, "two ns later")
    scheduler.call_soon(note, "first turn")


def on_event_core() -> list[tuple[int, str]]:
    core = EventCore()
    log: list[tuple[int, str]] = []
    script(core, log)
    core.run()
    return log


def on_asyncio() -> list[tuple[int, str]]:
    async def main() -> list[tuple[int, str]]:
        log: list[tuple[int, str]] = []
        script(LoopScheduler(asyncio.get_running_loop()), log)
        await asyncio.sleep(10)
        return log

    return run_virtual(main())


class TestTieRule:
    def test_same_instant_timers_run_in_scheduling_order_and_soon_callbacks_after_them(
        self,
    ) -> None:
        t = 1_234_567_891
        assert on_event_core() == [
            (0, "first turn"),
            (t, "a"),
            (t, "b"),
            (t, "c"),
            (t, "d, scheduled last for the same instant"),
            (t, "a+soon"),
            (t, "b+soon"),
            (t, "c+soon"),
            (t, "a+timer-now"),
            (t, "b+timer-now"),
            (t, "c+timer-now"),
            (t + 1, "one ns later"),
            (t + 2, "two ns later"),
        ]

    def test_the_event_core_decides_ties_as_the_asyncio_loop_does(self) -> None:
        assert on_event_core() == on_asyncio()

    def test_many_cancelled_timers_are_dropped_without_changing_the_order(self) -> None:
        core = EventCore()
        order: list[int] = []
        timers = [core.call_at((1 + i % 7) * S, order.append, i) for i in range(2000)]
        for i, timer in enumerate(timers):
            if i % 3:
                timer.cancel()
        core.run()
        kept = [i for i in range(2000) if not i % 3]
        assert order == sorted(kept, key=lambda i: (i % 7, i))
        assert core.now_ns == 7 * S

    def test_cancelled_timers_are_all_accounted_for_however_they_were_cancelled(self) -> None:
        """Before their instant, in the turn they fall due (by a timer of the same instant) or
        after they ran: the core's count of cancelled timers it holds ends at 0, and only the
        timers never cancelled before their turn ran."""
        core = EventCore()
        ran: list[str] = []
        early = core.call_at(S, ran.append, "early: cancelled before its instant")
        fired = core.call_at(S, ran.append, "fired")
        early.cancel()
        # First at 2 s, it cancels `late`, already due with it, and a timer already run.
        core.call_at(2 * S, lambda: (late.cancel(), fired.cancel()))
        late = core.call_at(2 * S, ran.append, "late: cancelled as its instant came")
        core.run()
        assert ran == ["fired"]
        assert core.cancelled == 0

    def test_an_instant_whose_timers_were_all_cancelled_is_never_reached(self) -> None:
        core = EventCore()
        seen: list[int] = []
        core.call_at(2 * S, lambda: seen.append(core.now_ns))
        doomed = [core.call_at(9 * S, seen.append, -1) for _ in range(3)]
        core.call_at(2 * S, lambda: [timer.cancel() for timer in doomed])
        core.run()
        assert seen == [2 * S]
        assert core.now_ns == 2 * S

    def test_a_run_that_ends_at_an_instant_runs_all_of_it_and_nothing_after(self) -> None:
        core = EventCore()
        seen: list[tuple[int, str]] = []

        def end() -> None:
            core.stop_after_instant()
            core.call_soon(lambda: seen.append((core.now_ns, "queued at the end")))
            core.call_at(core.now_ns, lambda: seen.append((core.now_ns, "due at the end")))

        core.call_at(5 * S, end)
        core.call_at(5 * S + 1, lambda: seen.append((core.now_ns, "after the end")))
        core.run()
        assert seen == [(5 * S, "queued at the end"), (5 * S, "due at the end")]
        assert core.now_ns == 5 * S

    def test_time_never_goes_back(self) -> None:
        core = EventCore()
        seen: list[int] = []
        core.call_at(3 * S, lambda: core.call_at(1 * S, lambda: seen.append(core.now_ns)))
        core.run()
        assert seen == [3 * S]


Outcome = tuple[list[tuple[object, ...]], list[tuple[str, int | None, int]], int, int]


def _outcome(result: VariantResult) -> Outcome:
    return (
        [tuple(event) for event in result.events],
        [(p.pod.uid, p.images_ready_at, p.syncs) for p in result.pods],
        result.simulated_ns,
        result.pulls,
    )


def both_ways(spec: VariantSpec) -> tuple[Outcome, Outcome]:
    """The variant on the lean core, and on asyncio's loop in virtual time (as the daemon)."""
    return (
        _outcome(_simulate_virtual(spec)),
        _outcome(run_virtual(_simulate_on_loop(spec, None))),
    )


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenarios_run_alike_on_the_event_core_and_on_the_daemons_loop(path: Path) -> None:
    """Every bundled scenario, event for event and nanosecond for nanosecond: on the lean core,
    and on asyncio's loop in virtual time through `LoopScheduler`, as the daemon runs."""
    for spec in load_file(path).variants:
        lean, loop = both_ways(spec)
        assert lean == loop


def _rollout(kubelet: dict[str, object], **extra: object) -> dict[str, object]:
    images = [
        {
            "name": f"registry.example.com/app{i}:v1",
            "layers": [{"size": 30 << 20, "digest": "sha256:" + "b" * 64}, {"size": (5 + i) << 20}],
        }
        for i in range(4)
    ]
    return {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "Scenario",
        "metadata": {"name": "ties"},
        "spec": {
            "seed": 7,
            "duration": "30m",
            "kubelet": kubelet,
            "nodes": {"count": 5, "bandwidth": "100Mbps"},
            "registry": {
                "latency": "30ms",
                "bandwidth": "300Mbps",
                "images": images,
                "faults": [{"error": "toomanyrequests", "probability": 0.3}],
            },
            "workload": [
                {
                    "at": f"{j}s",
                    "replicas": 5,
                    **({"lifetime": "40s"} if j % 3 == 0 else {}),
                    "pod": {
                        "metadata": {"name": f"svc{j}"},
                        "spec": {
                            "containers": [
                                {"name": "a", "image": images[j % 4]["name"]},
                                {"name": "b", "image": images[(j + 1) % 4]["name"]},
                            ]
                        },
                    },
                }
                for j in range(6)
            ],
            **extra,
        },
    }


@pytest.mark.parametrize(
    "kubelet",
    [
        {"serializeImagePulls": False, "maxParallelImagePulls": 3, "registryPullQPS": 0},
        {"serializeImagePulls": False, "registryPullQPS": 2, "registryBurst": 3},
        {"registryPullQPS": 0},
    ],
    ids=["parallel-shared-layers", "qps", "serial"],
)
def test_rollouts_with_faults_lifetimes_and_shared_layers_run_alike(
    kubelet: dict[str, object],
) -> None:
    document = _rollout(kubelet)
    for spec in load_document(document).variants:
        lean, loop = both_ways(spec)
        assert lean == loop
        assert lean[3] > 0
