"""What a scenario run reports: the JSON of SPEC section 8 and a table people can read.

Times are simulated seconds from the start (the engine's integer nanoseconds), rounded to the
microsecond so the JSON is stable and readable. Percentiles are nearest-rank over every pod of
the variant: a pod whose images never became ready ranks after all those that did, as if it
took forever, and a percentile (or the max) that falls on such a pod is reported as not ready
(`null` in JSON, `not ready` in the table). So stranded pods push percentiles up instead of
silently vanishing from them, and every number reported is one a pod actually saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import orjson

from kubesim_images.events import Event
from kubesim_images.podworkers import ContainerStatus, PodStatus, State
from kubesim_images.reasons import Reason
from kubesim_images.scenario.nogc import no_cyclic_gc
from kubesim_images.scenario.runner import NodeReport, ScenarioResult, VariantResult
from kubesim_images.units import format_size

if TYPE_CHECKING:
    from rich.console import Console

_PERCENTILES = (("p50", 50), ("p90", 90), ("p99", 99))
_T = TypeVar("_T")
# Pods or events encoded per call when streaming: large enough that orjson does the work, small
# enough that the dicts of one chunk are all that is alive at a time.
_CHUNK = 4096


def _t(ns: int) -> float:
    """Seconds rounded to the microsecond, as `round(ns / 1e9, 6)` gives them, at a third of
    its cost (called for every event and pod): rounding the integer to whole microseconds and
    dividing once is the same double, except where the nanoseconds sit exactly on a half
    microsecond (the float quotient then decides) or are too large for the quotient to resolve
    a nanosecond."""
    if 0 <= ns < 10**15 and ns % 1000 != 500:
        return ((ns + 500) // 1000) / 1e6
    return round(ns / 1e9, 6)


def percentile(sorted_values: Sequence[int | None], pct: float) -> int | None:
    """Nearest-rank percentile of already sorted values (None, never ready, sorted last)."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def images_ready(pods: Sequence[PodStatus]) -> dict[str, float | None]:
    """p50/p90/p99/max of creation-to-images-ready over all pods; None where the rank falls on
    a pod that never became ready (or there are no pods)."""
    ready = sorted(p.images_ready_at - p.created_at for p in pods if p.images_ready_at is not None)
    values: list[int | None] = [*ready, *([None] * (len(pods) - len(ready)))]
    out: dict[str, float | None] = {}
    for key, pct in (*_PERCENTILES, ("max", 100)):
        value = percentile(values, pct) if values else None
        out[key] = None if value is None else _t(value)
    return out


def summary(result: VariantResult) -> dict[str, Any]:
    out = {
        "pods": len(result.pods),
        "podsReady": sum(1 for p in result.pods if p.ready),
        "imagesReady": images_ready(result.pods),
        "pulls": result.pulls,
        "failedPulls": result.failed_pulls,
        "backoffs": result.counts.get(Reason.BACK_OFF, 0),
        "bytesPulled": result.bytes_pulled,
        "simulatedSeconds": _t(result.simulated_ns),
        "wallSeconds": round(result.wall_seconds, 3),
        "gcRuns": sum(n.gc_runs for n in result.nodes),
        "imagesGarbageCollected": sum(n.images_collected for n in result.nodes),
        "bytesFreed": sum(n.bytes_freed for n in result.nodes),
        "rePulls": sum(n.re_pulls for n in result.nodes),
    }
    if result.registry_stats is not None:  # real registries (SPEC section 10)
        out["registry"] = {**result.registry_stats, "pullSeconds": pull_seconds(result)}
    return out


def pull_seconds(result: VariantResult) -> dict[str, float | None]:
    """p50/p90/p99/max of the successful pulls' own durations (the `Pulled` event's first
    figure: from leaving the queue to the image stored), nearest-rank; None without pulls."""
    ordered = sorted(result.pull_seconds)
    return {
        key: (ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1] if ordered else None)
        for key, pct in (*_PERCENTILES, ("max", 100))
    }


def _t_or_none(ns: int | None) -> float | None:
    return None if ns is None else _t(ns)


def node_json(node: NodeReport) -> dict[str, Any]:
    """A node's disk and images at the end of the run (SPEC section 9)."""
    return {
        "name": node.name,
        "imageFs": {"capacity": node.capacity, "used": node.used},
        "images": [
            {
                "name": image.name,
                "id": image.id,
                "size": image.size,
                "lastUsed": _t_or_none(image.last_used),
                "firstDetected": _t_or_none(image.first_detected),
            }
            for image in node.images
        ],
    }


def _state(cs: ContainerStatus) -> dict[str, Any]:
    if cs.state is State.WAITING:
        return {"waiting": {"reason": cs.reason, "message": cs.message}}
    if cs.state is State.RUNNING:
        return {"running": {"startedAt": _t(cs.started_at or 0)}}
    return {"terminated": {"reason": cs.reason, "finishedAt": _t(cs.started_at or 0)}}


def pod_json(status: PodStatus) -> dict[str, Any]:
    pod = status.pod
    ready = status.images_ready_at
    return {
        "namespace": pod.namespace,
        "name": pod.name,
        "node": status.node or None,  # None: Pending, no node could take it
        "createdAt": _t(status.created_at),
        "imagesReadyAt": None if ready is None else _t(ready),
        "containers": [
            {
                "name": cs.container.name,
                "image": cs.container.image,
                "pullAttempts": cs.pull_attempts,
                "state": _state(cs),
            }
            for statuses in (status.init_statuses, status.statuses)
            for cs in statuses
        ],
    }


def to_json(result: ScenarioResult) -> dict[str, Any]:
    with no_cyclic_gc():
        return _document(result)


def _variant_json(variant: VariantResult) -> dict[str, Any]:
    head: dict[str, Any] = {"name": variant.name}
    if variant.model is not None:
        head["model"] = variant.model
    return {
        **head,
        "summary": summary(variant),
        "nodes": [node_json(n) for n in variant.nodes],
        "pods": [pod_json(p) for p in variant.pods],
        "events": [event_json(e) for e in variant.events],
    }


def _document(result: ScenarioResult) -> dict[str, Any]:
    document: dict[str, Any] = {
        "scenario": result.scenario.name,
        "variants": [_variant_json(variant) for variant in result.variants],
    }
    if result.virtual is not None:
        document["virtual"] = {"variants": [_variant_json(v) for v in result.virtual]}
        document["comparison"] = comparison(result)
    return document


def _difference(real: float | None, virtual: float | None) -> dict[str, float | None]:
    diff = None if real is None or virtual is None else round(real - virtual, 6)
    return {"real": real, "virtual": virtual, "difference": diff}


def comparison(result: ScenarioResult) -> list[dict[str, Any]]:
    """`--compare`: per variant, each summary figure of the real-time run beside its model's
    (`difference` is real minus virtual, in seconds for times)."""
    out = []
    for real, virtual in zip(result.variants, result.virtual or (), strict=True):
        r, v = summary(real), summary(virtual)
        out.append(
            {
                "name": real.name,
                "imagesReady": {
                    key: _difference(r["imagesReady"][key], v["imagesReady"][key])
                    for key in ("p50", "p90", "p99", "max")
                },
                **{
                    key: {"real": r[key], "virtual": v[key]}
                    for key in ("podsReady", "pulls", "failedPulls", "backoffs", "bytesPulled")
                },
            }
        )
    return out


def event_json(e: Event) -> dict[str, Any]:
    # The enums are str subclasses and print as their value; reading `.value` per event costs
    # more than building the rest of the event.
    return {
        "t": _t(e.t),
        "node": e.node or None,  # the scheduler's events have no node
        "namespace": e.namespace,
        "pod": e.pod or None,  # node events have no pod
        "type": e.type,
        "reason": e.reason,
        "message": e.message,
    }


def write_json(result: ScenarioResult, out: BinaryIO) -> None:
    """`to_json`'s document as `orjson.dumps(..., option=OPT_INDENT_2)` prints it, plus a
    newline, byte for byte, written a chunk of pods or events at a time: a million pods never
    exist as one document (which at 100,000 nodes was most of the command's memory)."""
    dumps = orjson.dumps
    with no_cyclic_gc():
        out.write(b'{\n  "scenario": ' + dumps(result.scenario.name) + b',\n  "variants": ')
        _write_variants(out, result.variants, 2)
        if result.virtual is not None:
            out.write(b',\n  "virtual": {\n    "variants": ')
            _write_variants(out, result.virtual, 4)
            comparison_text = dumps(comparison(result), option=orjson.OPT_INDENT_2)
            out.write(b'\n  },\n  "comparison": ' + _indented(comparison_text, 2))
        out.write(b"\n}\n")


def _write_variants(out: BinaryIO, variants: Sequence[VariantResult], depth: int) -> None:
    """A list of variants whose key sits `depth` spaces deep."""
    dumps = orjson.dumps
    if not variants:
        out.write(b"[]")
        return
    item, key = b" " * (depth + 2), b" " * (depth + 4)
    out.write(b"[")
    for index, variant in enumerate(variants):
        out.write((b"," if index else b"") + b"\n" + item + b"{\n" + key + b'"name": ')
        out.write(dumps(variant.name))
        if variant.model is not None:
            model = _indented(dumps(variant.model, option=orjson.OPT_INDENT_2), depth + 4)
            out.write(b",\n" + key + b'"model": ' + model)
        head = _indented(dumps(summary(variant), option=orjson.OPT_INDENT_2), depth + 4)
        out.write(b",\n" + key + b'"summary": ' + head + b",\n" + key + b'"nodes": ')
        _write_list(out, variant.nodes, node_json, depth + 4)
        out.write(b",\n" + key + b'"pods": ')
        _write_list(out, variant.pods, pod_json, depth + 4)
        out.write(b",\n" + key + b'"events": ')
        _write_list(out, variant.events, event_json, depth + 4)
        out.write(b"\n" + item + b"}")
    out.write(b"\n" + b" " * depth + b"]")


def _indented(text: bytes, depth: int) -> bytes:
    """A value printed at the top level, as it prints nested `depth` spaces deep (JSON strings
    hold no raw newline, so every newline is the printer's own)."""
    return text.replace(b"\n", b"\n" + b" " * depth)


def _write_list(
    out: BinaryIO, items: Sequence[_T], to_dict: Callable[[_T], Any], depth: int
) -> None:
    """A list whose key sits `depth` (even) spaces deep. orjson indents from the top level
    only, so each chunk is printed nested in `depth // 2` lists, which puts its items at the
    depth they print at, and the text between the wrappers' brackets is written as printed:
    no pass over a document's worth of bytes to re-indent or cut it."""
    if not items:
        out.write(b"[]")
        return
    nesting = depth // 2
    # "[\n  [\n    [" before the first item's "\n", and "\n    ]\n  ]\n]" after the last.
    head = len(b"\n".join(b"  " * level + b"[" for level in range(nesting + 1)))
    tail = len(b"".join(b"\n" + b"  " * level + b"]" for level in reversed(range(nesting + 1))))
    dumps, indent = orjson.dumps, orjson.OPT_INDENT_2
    out.write(b"[")
    for start in range(0, len(items), _CHUNK):
        chunk: Any = [to_dict(item) for item in items[start : start + _CHUNK]]
        for _ in range(nesting):
            chunk = [chunk]
        text = dumps(chunk, option=indent)
        if start:
            out.write(b",")
        out.write(memoryview(text)[head : len(text) - tail])
    out.write(b"\n" + b" " * depth + b"]")


def _seconds(value: float | None, missing: str = "-") -> str:
    if value is None:
        return missing
    if value < 60:
        return f"{value:.3g}s" if value < 10 else f"{value:.1f}s"
    return f"{int(value // 60)}m{value % 60:04.1f}s"


def columns(result: ScenarioResult) -> list[tuple[str, VariantResult]]:
    """The runs shown side by side: each variant, and with --compare its model right after it."""
    if result.virtual is None:
        return [(v.name, v) for v in result.variants]
    return [
        (f"{label} ({kind})", run)
        for real, model in zip(result.variants, result.virtual, strict=True)
        for label, kind, run in ((real.name, "real", real), (model.name, "virtual", model))
    ]


def _registry_rows(summaries: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """What real registries did; `-` in the columns of simulated runs."""
    stats = [s.get("registry") for s in summaries]
    if not any(stats):
        return []

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> tuple[str, list[str]]:
        return label, [cell(r) if r else "-" for r in stats]

    def codes(r: dict[str, Any]) -> str:
        return ", ".join(f"{code}: {n}" for code, n in r["statusCodes"].items()) or "-"

    return [
        row("registry requests", lambda r: str(r["requests"])),
        row("status codes", codes),
        row("429s", lambda r: str(r["statusCodes"].get("429", 0))),
        row("retries", lambda r: str(r["retries"])),
        row("registry bytes", lambda r: format_size(r["bytes"])),
        row("pull time p50", lambda r: _seconds(r["pullSeconds"]["p50"])),
        row("pull time max", lambda r: _seconds(r["pullSeconds"]["max"])),
    ]


def render_table(result: ScenarioResult, console: Console) -> None:
    """Variants side by side (each beside its model with --compare), then the pods of small
    runs, then what went wrong."""
    from rich.table import Table  # noqa: PLC0415 - `-o json` runs start without rich

    shown = columns(result)
    table = Table(title=f"scenario {result.scenario.name}", title_justify="left")
    table.add_column("")
    for label, _run in shown:
        table.add_column(label, justify="right")
    summaries = [summary(run) for _label, run in shown]
    rows: list[tuple[str, list[str]]] = [
        ("pods ready", [f"{s['podsReady']}/{s['pods']}" for s in summaries]),
        *[
            (
                f"images ready {key}",
                [
                    _seconds(s["imagesReady"][key], "not ready" if s["pods"] else "-")
                    for s in summaries
                ],
            )
            for key in ("p50", "p90", "p99", "max")
        ],
        ("pulls", [str(s["pulls"]) for s in summaries]),
        ("failed pulls", [str(s["failedPulls"]) for s in summaries]),
        ("back-offs", [str(s["backoffs"]) for s in summaries]),
        ("bytes pulled", [format_size(s["bytesPulled"]) for s in summaries]),
        *_registry_rows(summaries),
        ("image GC runs", [str(s["gcRuns"]) for s in summaries]),
        ("images collected", [str(s["imagesGarbageCollected"]) for s in summaries]),
        ("bytes freed", [format_size(s["bytesFreed"]) for s in summaries]),
        ("re-pulls", [str(s["rePulls"]) for s in summaries]),
        ("simulated time", [_seconds(s["simulatedSeconds"]) for s in summaries]),
        ("wall time", [f"{s['wallSeconds']:.3f}s" for s in summaries]),
    ]
    for label, cells in rows:
        table.add_row(label, *cells)
    console.print(table)
    for label, variant in shown:
        if len(variant.pods) > 12:
            continue
        pods = Table(title=f"pods ({label})", title_justify="left")
        for column in ("POD", "NODE", "CREATED", "IMAGES READY", "CONTAINERS"):
            pods.add_column(column)
        for status in variant.pods:
            ready = status.images_ready_at
            containers = ", ".join(
                f"{cs.container.name}={cs.reason or cs.state.value}({cs.pull_attempts} pulls)"
                if cs.state is State.WAITING
                else f"{cs.container.name}={cs.state.value}({cs.pull_attempts} pulls)"
                for cs in status.all_statuses()
            )
            pods.add_row(
                status.pod.name,
                status.node,
                _seconds(_t(status.created_at)),
                _seconds(_t(ready)) if ready is not None else "never",
                containers,
            )
        console.print(pods)
