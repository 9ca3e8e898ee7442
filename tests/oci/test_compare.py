"""`scenario run FILE --real-time --compare`: a real run with its model beside it, and the two
agree on image-ready times within a stated tolerance on loopback.

The workload makes the nodes' links the bottleneck, as the model's timing rests on: 3 nodes at
2 MiB/s, each given a 2 MiB image and then a 1 MiB one at 0 s. Serially the model says 1.0 s and
1.5 s; in parallel the two pulls share the link max-min fairly, so the small one is ready at 1.0 s
and the big one at 1.5 s. The model's catalogue is what the registry lists (resolved by
`--compare` itself), so nothing in this file repeats a size.

What is compared are the distributions the two runs produce (each pod's creation-to-images-ready
time, sorted: the empirical CDFs the report plots), rank by rank, never a wall-clock window:

- **Not faster than the model by more than `EARLY`.** A node's downlink is a token bucket that
  starts empty, so no download beats its link; between two pulls the bucket can only save what the
  link carries during the round trips in between (milliseconds on loopback). Sharing is where
  the real run can run ahead: the model starts both pulls' flows together and shares the link
  exactly, while for real one pull's first layer request can go out a few round trips before the
  other's and have the link alone meanwhile, and streams alternate 32 KiB (16 ms) at a time.
- **Not slower than the model by more than `LATE`, plus the time the machine kept this process
  from a CPU.** The real run adds what the model leaves out: three or four sequential requests
  per pull (manifest, config, layers) and the event loop's scheduling. A stall shorter than a
  quarter second is made up by the bucket (it refills while the reader waits), so only round
  trips and longer stalls count; a stall because other work held both cores is not the model's
  error, so the seconds the event loop's thread spent runnable but not running (the kernel's
  schedstat) are added to the bound. A real difference from the model shows with the CPU free.

Measured: 80 runs of this test in four batches of 20 on a 2-core VM loaded by other work (load
average 3.6-7.3), 480 ranks per variant: serial real - virtual from +0.005 to +0.172 s (batch
medians +0.036 to +0.063), parallel from -0.094 to +0.428 s (medians +0.050 to +0.072; the
+0.43 s was one run whose three first pulls all started late). The bounds are about twice the
extremes seen early and 1.75 times the one seen late, before the CPU wait is added (0.35-0.79 s
around the runs in the last batch). All 80 passed, as did 10 more runs without measuring.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ocikit import Seeded, skopeo_copy

from kubesim_images.scenario.model import load_file
from kubesim_images.scenario.plots import write_report
from kubesim_images.scenario.report import to_json, write_json
from kubesim_images.scenario.runner import run_scenario

pytestmark = pytest.mark.integration

NODES = 3
EARLY = 0.2  # s: the most the real run may beat the model by
LATE = 0.75  # s: the most the real run may trail the model by


@pytest.fixture(scope="module")
def half(seeded: Seeded) -> Iterator[str]:
    """A 1 MiB one-layer image of random bytes (gzip cannot shrink it), beside `big` (2 MiB)."""
    desc = seeded.layout.image([{"data/half.bin": os.urandom(1 << 20)}])
    seeded.layout.tag("half", desc)
    seeded.images["half"] = desc
    image = f"{seeded.open.host}/demo/half:v1"
    skopeo_copy(seeded.layout, "half", image)
    return image


def _manifest(seeded: Seeded, desc: dict[str, Any]) -> dict[str, Any]:
    path = seeded.layout.root / "blobs/sha256" / desc["digest"].removeprefix("sha256:")
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return doc


def _scenario(tmp_path: Path, big: str, half: str) -> Path:
    def entry(name: str, image: str) -> dict[str, Any]:
        return {
            "at": "0s",
            "replicas": NODES,
            "pod": {
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        }

    doc = {
        "apiVersion": "kubesim.io/v1alpha1",
        "kind": "Scenario",
        "metadata": {"name": "compare"},
        "spec": {
            "duration": "60s",
            "nodes": {"count": NODES, "bandwidth": "2Mi"},
            "registry": {"type": "oci", "platform": "linux/amd64", "store": "discard"},
            "kubelet": {"serializeImagePulls": True},
            # Round-robin: big-i then half-i on node-i.
            "workload": [entry("big", big), entry("half", half)],
            "variants": [
                {"name": "serial"},
                {"name": "parallel", "kubelet": {"serializeImagePulls": False}},
            ],
        },
    }
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _runqueue_seconds() -> float:
    """Seconds this thread has spent runnable, waiting for a CPU (0 where the kernel does not
    say): the part of a real run's lateness that is the machine's, not the model's."""
    try:
        fields = Path("/proc/thread-self/schedstat").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) / 1e9


def _ready(variant: dict[str, Any]) -> list[float]:
    """Each pod's creation-to-images-ready seconds, sorted (every pod must have got there)."""
    times = [p["imagesReadyAt"] for p in variant["pods"]]
    assert None not in times, variant["summary"]
    return sorted(p["imagesReadyAt"] - p["createdAt"] for p in variant["pods"])


def test_a_real_run_beside_its_model_agrees_within_the_stated_tolerance(
    seeded: Seeded, half: str, tmp_path: Path
) -> None:
    big = f"{seeded.open.host}/demo/big:v1"
    scenario = load_file(_scenario(tmp_path, big, half))
    # What `scenario run FILE --real-time --compare --report DIR -o json` does, with the time
    # the machine kept this thread from a CPU measured around the runs alone (not the plots).
    waited = _runqueue_seconds()
    result = run_scenario(scenario, real_time=True, compare=True)
    waited = _runqueue_seconds() - waited
    out = io.BytesIO()
    write_json(result, out)
    document = json.loads(out.getvalue())
    report = tmp_path / "report"
    write_report(result, to_json(result), report)

    real = {v["name"]: v for v in document["variants"]}
    virtual = {v["name"]: v for v in document["virtual"]["variants"]}
    assert list(real) == list(virtual) == ["serial", "parallel"]

    # The model's catalogue is what the registry lists for linux/amd64.
    sizes = {
        image: sum(int(x["size"]) for x in _manifest(seeded, seeded.images[name])["layers"])
        for image, name in ((big, "big"), (half, "half"))
    }
    for name, model in virtual.items():
        info = model["model"]
        assert {i["image"]: i["size"] for i in info["images"]} == sizes
        assert info["unresolved"] == []
        assert 0 <= info["latency"] < LATE
        assert "registry" not in model["summary"]
        # Virtual time: layers only, exactly once per node.
        assert model["summary"]["bytesPulled"] == NODES * sum(sizes.values())
        assert model["summary"]["podsReady"] == 2 * NODES
        registry = real[name]["summary"]["registry"]
        assert registry["statusCodes"] == {"200": registry["requests"]}
        assert registry["pullSeconds"]["max"] is not None

    # The model's own arithmetic: 2 MiB/s links, a latency before each pull.
    latency = virtual["serial"]["model"]["latency"]
    link = 2 << 20
    serial = _ready(virtual["serial"])
    assert serial[:NODES] == pytest.approx([latency + sizes[big] / link] * NODES, abs=1e-5)
    both = latency + (sizes[big] + sizes[half]) / link
    assert serial[NODES:] == pytest.approx([both + latency] * NODES, abs=1e-5)

    # The two distributions, rank by rank, within the stated tolerance either way.
    for name, ran in real.items():
        real_times, model_times = _ready(ran), _ready(virtual[name])
        differences = [r - v for r, v in zip(real_times, model_times, strict=True)]
        assert all(-EARLY <= d <= LATE + waited for d in differences), (
            name,
            real_times,
            model_times,
            f"waited {waited:.3f} s for a CPU",
        )

    # The comparison block says the same, per percentile.
    comparison = {c["name"]: c for c in document["comparison"]}
    for name in real:
        p50 = comparison[name]["imagesReady"]["p50"]
        assert p50["difference"] == pytest.approx(p50["real"] - p50["virtual"], abs=2e-6)
        assert comparison[name]["podsReady"] == {"real": 2 * NODES, "virtual": 2 * NODES}

    # The report: the same JSON as -o json, and the plots with each model overlaid.
    assert json.loads((report / "report.json").read_text()) == document
    assert {p.name for p in report.glob("*.png")} == {
        "images-ready-cdf.png",
        "pulls-timeline.png",
        "disk-usage.png",
    }
