"""Scenario files: loading, validation errors that name file and field, variants, JSON output."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from simkit import image, pod, scenario
from structlog.testing import capture_logs

from kubesim_images.cli import main
from kubesim_images.errors import ConfigError
from kubesim_images.pod import pod_from_manifest
from kubesim_images.scenario import model, plots
from kubesim_images.scenario.model import load_document, load_file, load_text
from kubesim_images.scenario.report import to_json
from kubesim_images.scenario.runner import run_scenario

EXAMPLES = sorted((Path(__file__).parents[2] / "config" / "scenarios").glob("*.yaml"))
APP = "example.com/app:v1"


def _doc(**spec):
    base = {"registry": {"images": [image(APP, 1)]}, "workload": [{"pod": pod("web", APP)}]}
    base.update(spec)
    return scenario(base)


def _error(document) -> str:
    with pytest.raises(ConfigError) as info:
        load_document(document, source="f.yaml")
    return str(info.value)


class TestValidation:
    """Every refusal names the file, the field and why."""

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            (
                {"nodes": {"count": 0}},
                "f.yaml: spec.nodes.count: must be a positive integer, got 0",
            ),
            ({"nodes": {"bandwith": "1Gi"}}, "f.yaml: spec.nodes.bandwith: unknown field"),
            ({"duration": "ten minutes"}, "f.yaml: spec.duration: time: invalid duration"),
            ({"nodes": {"bandwidth": "fast"}}, "f.yaml: spec.nodes.bandwidth: invalid bandwidth"),
            (
                {"nodes": {"preloadedImages": ["busybox:1.36"]}},
                "f.yaml: spec.nodes.preloadedImages[0]: 'busybox:1.36' is not in the registry's",
            ),
            (
                {"registry": {"images": [{"name": "Bad/Name", "layers": [{"size": 1}]}]}},
                "f.yaml: spec.registry.images[0].name: 'Bad/Name': invalid reference format",
            ),
            (
                {"registry": {"images": [{"name": APP, "layers": [{"size": "1Gb"}]}]}},
                "f.yaml: spec.registry.images[0].layers[0].size: invalid size",
            ),
            (
                {"registry": {"images": [image(APP, 1)], "faults": [{"probability": 2}]}},
                "f.yaml: spec.registry.faults[0].probability: must be a number between 0 and 1",
            ),
            (
                {"workload": [{"pod": {"metadata": {"name": "x"}, "spec": {"containers": []}}}]},
                "f.yaml: spec.workload[0].pod.spec.containers: Required value",
            ),
            (
                {"workload": [{"pod": pod("web", APP, policy="Sometimes")}]},
                (
                    "f.yaml: spec.workload[0].pod.spec.containers[0].imagePullPolicy: "
                    'Unsupported value: "Sometimes"'
                ),
            ),
            (
                {"workload": [{"pod": pod("web", APP)}, {"pod": pod("web", APP)}]},
                "f.yaml: spec.workload[1].pod.metadata.name: pod default/web-0 is created twice",
            ),
            ({"sync": {"jitterFactor": -1}}, "f.yaml: spec.sync.jitterFactor: must be a number"),
        ],
    )
    def test_bad_fields(self, spec, expected):
        assert _error(_doc(**spec)).startswith(expected)

    @pytest.mark.parametrize(
        ("kubelet", "message"),
        [
            (
                {"serializeImagePulls": False, "maxParallelImagePulls": 0},
                "invalid configuration: maxParallelImagePulls 0 must be a positive number",
            ),
            (
                {"serializeImagePulls": True, "maxParallelImagePulls": 3},
                (
                    "invalid configuration: maxParallelImagePulls cannot be larger than 1 unless "
                    "SerializeImagePulls (--serialize-image-pulls) is set to false"
                ),
            ),
        ],
    )
    def test_invalid_kubelet_settings_use_the_kubelets_texts(self, kubelet, message):
        assert _error(_doc(kubelet=kubelet)) == f"f.yaml: spec.kubelet: {message}"

    def test_invalid_setting_in_a_variant_names_the_variant(self):
        document = _doc(variants=[{"name": "bad", "kubelet": {"maxParallelImagePulls": -1}}])
        assert "variant bad" in _error(document)

    def test_a_fault_in_the_base_spec_is_not_blamed_on_a_variant(self):
        workload = [{"replica": 10, "pod": pod("web", APP)}]
        variants = [{"name": "serial"}, {"name": "parallel", "seed": 3}]
        alone = _error(_doc(workload=workload))
        assert alone.startswith("f.yaml: spec.workload[0].replica: unknown field")
        assert _error(_doc(workload=workload, variants=variants)) == alone
        # Overridden by a variant, the same fault is that variant's.
        mine = _error(_doc(variants=[{"name": "mine", "workload": workload}]))
        assert mine.startswith("f.yaml: spec (variant mine).workload[0].replica: unknown field")

    def test_a_misspelt_kubelet_field_is_warned_once_where_it_is_written(self):
        document = _doc(
            kubelet={"serialiseImagePulls": False},
            variants=[
                {"name": "a"},
                {"name": "b", "kubelet": {"maxParallelImagePulls": 2}},
                {"name": "c", "kubelet": {"registryPullQPz": 3}},
                {"name": "d", "kubelet": {"registryPullQPz": 3}},
            ],
        )
        with capture_logs() as logs:
            load_document(document, source="f.yaml")
        assert [entry["field"] for entry in logs] == [
            "spec.kubelet.serialiseImagePulls",
            "spec (variant c).kubelet.registryPullQPz",
            "spec (variant d).kubelet.registryPullQPz",
        ]

    def test_wrong_kind_and_yaml_errors(self):
        assert "kind: must be Scenario" in _error({**_doc(), "kind": "Pod"})
        with pytest.raises(ConfigError, match=r"invalid YAML: line 3, column 1"):
            load_text("spec:\n  nodes: [\n", source="x.yaml")
        with pytest.raises(ConfigError, match="cannot read scenario"):
            load_file("/nonexistent/file.yaml")

    def test_cli_reports_an_invalid_file_without_a_traceback(self, tmp_path, capsys):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(_doc(kubelet={"maxParallelImagePulls": 0})))
        assert main(["scenario", "run", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: spec.kubelet: invalid configuration:")
        assert "Traceback" not in err


class TestVariants:
    def test_variants_override_spec_fields_and_run_side_by_side(self):
        document = _doc(
            kubelet={"serializeImagePulls": True, "registryPullQPS": 0},
            variants=[
                {"name": "serial"},
                {"name": "parallel", "kubelet": {"serializeImagePulls": False}},
            ],
        )
        loaded = load_document(document)
        assert [v.name for v in loaded.variants] == ["serial", "parallel"]
        assert loaded.variants[0].kubelet.pull_concurrency == 1
        assert loaded.variants[1].kubelet.pull_concurrency is None
        assert loaded.variants[1].kubelet.registry_pull_qps == 0  # merged, not replaced

    def test_no_variants_means_one_named_default(self):
        assert [v.name for v in load_document(_doc()).variants] == ["default"]

    def test_replicas_are_named_and_spread_round_robin_in_file_order(self):
        document = _doc(
            nodes={"count": 3},
            workload=[
                {"at": "5s", "replicas": 2, "pod": pod("late", APP)},
                {"at": "0s", "replicas": 2, "pod": pod("early", APP)},
                {"at": "5s", "pod": pod("later", APP)},
            ],
        )
        result = run_scenario(load_document(document))
        placed = [(p.pod.name, p.node, p.created_at / 1e9) for p in result.variants[0].pods]
        assert placed == [
            ("early-0", "node-0", 0.0),
            ("early-1", "node-1", 0.0),
            ("late-0", "node-2", 5.0),
            ("late-1", "node-0", 5.0),
            ("later-0", "node-1", 5.0),
        ]


class TestOutput:
    def test_json_shape(self):
        doc = to_json(run_scenario(load_document(_doc())))
        assert doc["scenario"] == "test"
        (variant,) = doc["variants"]
        assert set(variant) == {"name", "summary", "nodes", "pods", "events"}
        assert set(variant["summary"]) == {
            "pods",
            "podsReady",
            "imagesReady",
            "pulls",
            "failedPulls",
            "backoffs",
            "bytesPulled",
            "simulatedSeconds",
            "wallSeconds",
            "gcRuns",
            "imagesGarbageCollected",
            "bytesFreed",
            "rePulls",
        }
        (node_json,) = variant["nodes"]
        assert set(node_json) == {"name", "imageFs", "images"}
        assert set(node_json["imageFs"]) == {"capacity", "used"}
        assert set(variant["summary"]["imagesReady"]) == {"p50", "p90", "p99", "max"}
        (pod_json,) = variant["pods"]
        assert set(pod_json) == {
            "namespace",
            "name",
            "node",
            "createdAt",
            "imagesReadyAt",
            "containers",
        }
        assert set(pod_json["containers"][0]) == {"name", "image", "pullAttempts", "state"}
        assert set(variant["events"][0]) == {
            "t",
            "node",
            "namespace",
            "pod",
            "type",
            "reason",
            "message",
        }

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
    def test_bundled_examples_are_deterministic(self, path):
        def run() -> str:
            doc = to_json(run_scenario(load_file(path)))
            for variant in doc["variants"]:
                variant["summary"].pop("wallSeconds")
            return json.dumps(doc, sort_keys=True)

        assert run() == run()

    def test_cli_json_and_table(self, capsys):
        flaky = next(p for p in EXAMPLES if p.stem == "flaky-registry")
        assert main(["scenario", "run", str(flaky), "-o", "json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        summary = doc["variants"][0]["summary"]
        assert summary["failedPulls"] > 0
        assert summary["backoffs"] > 0
        assert summary["podsReady"] == summary["pods"]
        assert main(["scenario", "run", str(flaky)]) == 0
        out = capsys.readouterr().out
        assert "images ready p99" in out
        assert "ledger-0" in out

    def test_unknown_variant_is_refused(self, capsys):
        path = EXAMPLES[0]
        assert main(["scenario", "run", str(path), "--variant", "nope"]) == 2
        assert "no variant named 'nope'" in capsys.readouterr().err

    def test_report_writes_json_and_plots(self, tmp_path, capsys):
        path = next(p for p in EXAMPLES if p.stem == "serial-vs-parallel")
        assert main(["scenario", "run", str(path), "--report", str(tmp_path)]) == 0
        assert json.loads((tmp_path / "report.json").read_text())["scenario"]
        for name in ("images-ready-cdf.png", "pulls-timeline.png", "disk-usage.png"):
            assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_plots_are_drawn_in_seconds_as_the_json_reports_them(capsys):
    """Times are integer nanoseconds inside; the plots' axes say seconds, so they plot seconds."""
    path = next(p for p in EXAMPLES if p.stem == "serial-vs-parallel")
    result = run_scenario(load_file(path))
    assert main(["scenario", "run", str(path), "-o", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    for variant, reported in zip(result.variants, document["variants"], strict=True):
        expected = sorted(
            p["imagesReadyAt"] - p["createdAt"]
            for p in reported["pods"]
            if p["imagesReadyAt"] is not None
        )
        assert plots.ready_seconds(variant) == pytest.approx(expected)
        times, counts = plots.pulls_in_flight(variant)
        pull_events = [e for e in reported["events"] if e["reason"] in {"Pulling", "Pulled"}]
        assert max(times) == pytest.approx(max(e["t"] for e in pull_events))
        assert counts[-1] == 0


def test_replicas_are_stamped_from_one_validated_pod_but_names_still_checked():
    long_name = "x" * 251  # x...x-0 .. -9 fit in 253 characters, x...x-10 does not
    document = _doc(workload=[{"replicas": 11, "pod": pod(long_name, APP)}])
    with pytest.raises(ConfigError, match=r"workload\[0\]\.pod\.metadata\.name: Invalid value"):
        load_document(document)
    loaded = load_document(_doc(workload=[{"replicas": 10, "pod": pod(long_name, APP)}]))
    pods = [p for _, p in loaded.variants[0].pods]
    assert [p.name for p in pods] == [f"{long_name}-{i}" for i in range(10)]
    assert len({p.uid for p in pods}) == 10
    assert all(p.containers is pods[0].containers for p in pods)


YAML_CORNERS = [
    "base: &base {cpu: 1, tags: [a, b]}\nuse: *base\nmerged: {<<: *base, cpu: 2}\n",
    "text: |\n  two\n  lines\nfolded: >-\n  one\n  line\nkept: |+\n  end\n\n",
    "bools: [yes, no, on, off, true, False, ~, null, '']\n",
    "numbers: [017, 0o17, 0x1f, 1:30, 1e3, 1.5e3, .inf, -.Inf, .NaN, 1_000, +12]\n",
    "when: [2001-12-14t21:59:43.10-05:00, 2002-12-14]\n",
    'escapes: ["tab\\there", "\\u00e9\\x41\\/", \'it\'\'s\', "\\N\\_\\L"]\n',
    "--- \nlist:\n- a\n-   - nested\n    - deeper\n- {k: v}\n...\n",
    "? complex key\n: value\n'quoted key': 1\n\"double\": 2\n",
    "# only a comment\n",
    "",
    "plain: a value:with colon\nurl: http://example.com:5000/x#frag\n",
    "unicode: \u00e9t\u00e9 \U0001f600\n",
]


@pytest.mark.parametrize(
    "text",
    [*YAML_CORNERS, *(p.read_text(encoding="utf-8") for p in EXAMPLES)],
    ids=[*(f"corner{i}" for i in range(len(YAML_CORNERS))), *(p.stem for p in EXAMPLES)],
)
def test_yaml_is_read_as_pyyaml_reads_it(text):
    """libyaml's parser does the reading where it is installed: the same documents."""
    assert model.parse_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize("text", ["spec:\n  nodes: [\n", "a: b: c\n", "\tkey: 1\n", "k: \x07\n"])
def test_yaml_errors_are_pyyamls(text):
    with pytest.raises(yaml.YAMLError) as ours:
        model.parse_yaml(text)
    with pytest.raises(yaml.YAMLError) as theirs:
        yaml.safe_load(text)
    assert str(ours.value) == str(theirs.value)


def test_every_stamped_replica_is_the_pod_its_own_manifest_makes():
    """Nothing of the template is lost on the copies: replicas once dropped node affinity."""
    manifest = pod("web", APP, init=(APP,))
    manifest["metadata"].update(namespace="team", labels={"app": "web"})
    manifest["spec"].update(
        nodeSelector={"zone": "east"},
        serviceAccountName="builder",
        imagePullSecrets=[{"name": "regcred"}],
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "zone", "operator": "In", "values": ["east"]}
                            ]
                        }
                    ]
                }
            }
        },
    )
    loaded = load_document(_doc(workload=[{"replicas": 3, "pod": manifest}]))
    pods = [p for _, p in loaded.variants[0].pods]
    assert [p.name for p in pods] == ["web-0", "web-1", "web-2"]
    for stamped in pods:
        own = {**manifest, "metadata": {**manifest["metadata"], "name": stamped.name}}
        expected = pod_from_manifest(own, uid=model._uid("team", stamped.name))
        assert stamped == expected
    assert pods[2].node_affinity is not None


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=60))
def test_pod_uids_are_the_uuid5_of_their_name(namespace, name):
    expected = uuid.uuid5(uuid.NAMESPACE_URL, f"kubesim://pods/{namespace}/{name}")
    assert model._uid(namespace, name) == str(expected)


def test_a_node_count_past_the_bound_is_refused_before_anything_is_built():
    """100,000,000 nodes once ran a machine out of memory; now the file is refused."""
    message = _error(_doc(nodes={"count": model.MAX_NODES + 1}))
    assert "f.yaml: spec.nodes.count: must be at most 1,000,000" in message
    assert load_document(_doc(nodes={"count": 1000})).variants[0].node_count == 1000


def test_more_pods_than_the_bound_are_refused():
    half = model.MAX_PODS // 2 + 1
    workload = [{"replicas": half, "pod": pod(name, APP)} for name in ("a", "b")]
    assert f"at most {model.MAX_PODS:,} pods in all" in _error(_doc(workload=workload))


def test_a_bandwidth_past_int64_is_refused_with_a_message():
    message = _error(_doc(nodes={"bandwidth": "1e400"}))
    assert "spec.nodes.bandwidth: invalid bandwidth '1e400': too large" in message
