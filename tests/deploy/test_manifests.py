"""`deploy/`: the StatefulSet, Service and ConfigMap that run the daemon as a load generator.

Validated offline: kubectl's own client-side dry run decodes every manifest (it needs only
discovery, served here by a stub that lists the kinds `deploy/` uses, since there is no
cluster), and what the manifests hand to the daemon is checked by the daemon's own readers:
the ConfigMap's daemon.yaml by its config parser, the container's arguments by its CLI parser.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from kubesim_images.cli import _parser
from kubesim_images.daemon.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

_RESOURCES = {
    "/api/v1": [("configmaps", "ConfigMap"), ("services", "Service"), ("pods", "Pod")],
    "/apis/apps/v1": [("statefulsets", "StatefulSet")],
}


# Fields Go's types print empty when a manifest leaves them out, and the namespace kubectl
# fills in; anything else is a change.
_EMPTY_DEFAULTS = {
    "ConfigMap.metadata.namespace",
    "Service.metadata.namespace",
    "StatefulSet.metadata.namespace",
    "ConfigMap.metadata.creationTimestamp",
    "Service.metadata.creationTimestamp",
    "Service.status",
    "StatefulSet.metadata.creationTimestamp",
    "StatefulSet.status",
    "StatefulSet.spec.template.metadata.creationTimestamp",
    "StatefulSet.spec.updateStrategy",
}


def _additions(mine: Any, printed: Any, path: str) -> set[str]:
    """Paths kubectl printed that `mine` lacks; fails on any value that differs."""
    if isinstance(mine, dict) and isinstance(printed, dict):
        assert mine.keys() <= printed.keys(), (path, mine.keys() - printed.keys())
        extra = {
            f"{path}.{k}"
            for k in printed.keys() - mine.keys()
            if printed[k] in (None, {}) or (k, printed[k]) == ("namespace", "default")
        }
        assert len(extra) == len(printed.keys() - mine.keys()), (path, printed)
        for key in mine:
            extra |= _additions(mine[key], printed[key], f"{path}.{key}")
        return extra
    if isinstance(mine, list) and isinstance(printed, list) and len(mine) == len(printed):
        return set().union(
            *(_additions(a, b, f"{path}[]") for a, b in zip(mine, printed, strict=True))
        )
    assert mine == printed, path
    return set()


def _manifests() -> dict[str, dict[str, Any]]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted(DEPLOY.glob("*.yaml"))]
    return {doc["kind"]: doc for doc in docs}


@pytest.fixture
def discovery() -> Iterator[str]:
    """Legacy discovery for v1 and apps/v1 on a free loopback port, from a thread."""

    async def api(_request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})  # fmt: skip

    async def apis(_request: web.Request) -> web.Response:
        version = {"groupVersion": "apps/v1", "version": "v1"}
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "apps", "versions": [version], "preferredVersion": version}]})  # fmt: skip

    def resources(path: str) -> Any:
        async def handler(_request: web.Request) -> web.Response:
            return web.json_response({
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": path.removeprefix("/apis/").removeprefix("/api/"),
                "resources": [{"name": name, "singularName": "", "namespaced": True,
                               "kind": kind, "verbs": ["create", "get", "list"]}
                              for name, kind in _RESOURCES[path]],
            })  # fmt: skip

        return handler

    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner: list[web.AppRunner] = []
    port: list[int] = []

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/api", api)
        app.router.add_get("/apis", apis)
        for path in _RESOURCES:
            app.router.add_get(path, resources(path))
        runner.append(web.AppRunner(app, access_log=None))
        await runner[0].setup()
        site = web.TCPSite(runner[0], "127.0.0.1", 0)
        await site.start()
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()))
    thread.start()
    assert started.wait(timeout=30)
    yield f"http://127.0.0.1:{port[0]}"
    asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)
    loop.close()


@pytest.mark.integration
def test_kubectl_client_dry_run_decodes_every_manifest(discovery: str, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is not on PATH, and CI must have it")
        pytest.skip("!!! kubectl NOT FOUND ON PATH — THIS TEST DID NOT RUN !!!")
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env.update(HOME=str(tmp_path), KUBECONFIG="/dev/null")
    done = subprocess.run(
        [kubectl, "create", "--dry-run=client", "-o", "yaml", "--validate=false",
         "--server", discovery, "-f", str(DEPLOY)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert sorted(doc["kind"] for doc in printed) == ["ConfigMap", "Service", "StatefulSet"]
    mine = _manifests()
    for doc in printed:  # what we wrote, plus only the empty fields kubectl's types print
        assert _additions(mine[doc["kind"]], doc, doc["kind"]) <= _EMPTY_DEFAULTS


def test_the_daemon_accepts_the_configmap_and_the_arguments(tmp_path: Path) -> None:
    manifests = _manifests()
    config_map = manifests["ConfigMap"]["data"]
    (tmp_path / "daemon.yaml").write_text(config_map["daemon.yaml"])
    config = load_config(tmp_path / "daemon.yaml")
    assert config.oci is not None
    assert config.oci.store == "discard"
    workload = yaml.safe_load(config_map["workload.yaml"])
    assert {item["kind"] for item in workload["items"]} == {"Pod"}

    pod = manifests["StatefulSet"]["spec"]["template"]
    [daemon] = [c for c in pod["spec"]["containers"] if c["name"] == "daemon"]
    args = _parser().parse_args(daemon["args"])
    assert args.command == "serve"
    assert Path(args.config).name == "daemon.yaml"
    mounts = {m["name"]: m["mountPath"] for m in daemon["volumeMounts"]}
    assert str(Path(args.config).parent) == mounts["config"]
    assert args.state_dir == mounts["state"]
    port = str(args.port)
    assert [p["containerPort"] for p in daemon["ports"]] == [args.port]

    # Prometheus finds every replica and its metrics; the Service selects the pods.
    for scraped in (pod["metadata"], manifests["Service"]["metadata"]):
        assert scraped["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": port,
                               "prometheus.io/path": "/metrics"}  # fmt: skip
    service = manifests["Service"]["spec"]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    assert (
        manifests["StatefulSet"]["spec"]["serviceName"] == manifests["Service"]["metadata"]["name"]
    )
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == manifests["ConfigMap"]["metadata"]["name"]
