"""`scenario run --report DIR`: the JSON plus plots people can paste into a design review.

Three figures, variants overlaid: the distribution of time-to-images-ready over pods (a CDF, so
p50/p99 read straight off), pulls in flight over simulated time (from Pulling to Pulled or
Failed), which shows queueing and back-off waves, and the first node's image filesystem usage,
sampled every 5 minutes just before and after image GC (the saw teeth are GC runs). With
`--compare` each variant's model is drawn over it in the same colour, dashed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubesim_images.clock import to_seconds
from kubesim_images.reasons import Reason
from kubesim_images.scenario.runner import ScenarioResult, VariantResult


def ready_seconds(variant: VariantResult) -> list[float]:
    """Each ready pod's time from creation to all images present, in seconds, ascending."""
    return sorted(
        to_seconds(p.images_ready_at - p.created_at)
        for p in variant.pods
        if p.images_ready_at is not None
    )


def pulls_in_flight(variant: VariantResult) -> tuple[list[float], list[int]]:
    """Pulls in flight (Pulling until Pulled or Failed) as a step function of seconds."""
    times: list[float] = [0.0]
    counts: list[int] = [0]
    current = 0
    for event in variant.events:
        if event.reason is Reason.PULLING:
            current += 1
        elif (event.reason is Reason.PULLED and event.message.startswith("Successfully")) or (
            event.reason is Reason.FAILED and event.message.startswith("Failed to pull")
        ):
            current -= 1
        else:
            continue
        times.append(to_seconds(event.t))
        counts.append(current)
    return times, counts


def series(result: ScenarioResult) -> list[tuple[str, VariantResult, dict[str, Any]]]:
    """(legend, run, line style) of each run drawn: a model dashed, in its variant's colour."""
    if result.virtual is None:
        return [(v.name, v, {}) for v in result.variants]
    out: list[tuple[str, VariantResult, dict[str, Any]]] = []
    for index, (real, model) in enumerate(zip(result.variants, result.virtual, strict=True)):
        colour = f"C{index % 10}"
        out.append((f"{real.name} (real)", real, {"color": colour}))
        out.append((f"{model.name} (virtual)", model, {"color": colour, "linestyle": "--"}))
    return out


def write_report(result: ScenarioResult, document: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib as mpl  # noqa: PLC0415 - heavy, and only reports need it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "report.json"]
    written[0].write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    drawn = series(result)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, variant, style in drawn:
        values = ready_seconds(variant)
        if values:
            fractions = [(i + 1) / len(variant.pods) for i in range(len(values))]
            ax.step(values, fractions, where="post", label=label, **style)
    ax.set_ylim(0, 1.02)
    written.append(
        _save(
            fig,
            ax,
            ("time from pod creation to all images present (s)", "fraction of pods"),
            f"{result.scenario.name}: images ready",
            directory / "images-ready-cdf.png",
        )
    )

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, variant, style in drawn:
        times, counts = pulls_in_flight(variant)
        ax.step(times, counts, where="post", label=label, **style)
    written.append(
        _save(
            fig,
            ax,
            ("time from the start (s)", "pulls in flight (incl. queued)"),
            f"{result.scenario.name}: pulls over time",
            directory / "pulls-timeline.png",
        )
    )

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, variant, style in drawn:
        if not variant.nodes or not variant.nodes[0].disk:
            continue
        node = variant.nodes[0]
        hours: list[float] = []
        percents: list[float] = []
        for t, before, after in node.disk:
            hours += [t / 1e9 / 3600, t / 1e9 / 3600]
            percents += [100 * before / node.capacity, 100 * after / node.capacity]
        ax.plot(hours, percents, label=label, **style)
    high = result.variants[0].spec.kubelet.image_gc_high_threshold_percent
    ax.axhline(high, linestyle="--", color="grey", label=f"GC high threshold ({high} %)")
    ax.set_ylim(0, 100)
    written.append(
        _save(
            fig,
            ax,
            ("time from the start (h)", "image filesystem used (%)"),
            f"{result.scenario.name}: disk usage of node-0, before and after each GC run",
            directory / "disk-usage.png",
        )
    )
    return written


def _save(fig: Any, ax: Any, labels: tuple[str, str], title: str, path: Path) -> Path:
    """Label, grid, legend and title a figure the same way, write it as PNG and free it."""
    import matplotlib.pyplot as plt  # noqa: PLC0415 - heavy, and only reports need it

    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
