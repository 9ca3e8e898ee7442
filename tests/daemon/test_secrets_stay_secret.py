"""Secrets never reach logs, events, metrics or API responses, even while they are used."""

from __future__ import annotations

import asyncio
import base64
import json

import structlog
from structlog.testing import capture_logs

from kubesim_images.daemon.cluster import Cluster
from kubesim_images.daemon.config import parse_config
from kubesim_images.daemon.resources import BY_KIND
from kubesim_images.logging import configure
from kubesim_images.metrics import Metrics
from kubesim_images.state import StateStore

PASSWORD = "hunter2-very-secret"
PRIVATE = "registry.example.com/team/private:v1"


async def test_a_pull_with_a_secret_leaves_no_trace(tmp_path):
    config = parse_config(
        {
            "sync": {"errorRequeue": "50ms", "jitterFactor": 0},
            "registry": {
                "latency": "0s",
                "images": [
                    {
                        "name": PRIVATE,
                        "layers": [{"size": "1Mi"}],
                        "auth": {"username": "robot", "password": PASSWORD},
                    }
                ],
            },
        },
        source="test",
    )
    state = StateStore(tmp_path / "state")
    metrics = Metrics()
    auth = base64.b64encode(f"robot:{PASSWORD}".encode()).decode()
    dockerconfig = json.dumps({"auths": {"registry.example.com": {"auth": auth}}})
    configure(level="debug")  # every level, whatever earlier tests configured
    with capture_logs() as logs:
        cluster = Cluster(config, state, metrics)  # loggers bind at construction
        cluster.restore()
        # What the API answers: the stored secret as a client may see it.
        created = BY_KIND["Secret"].view(
            cluster.stores["Secret"].create(
                "default",
                {
                    "metadata": {"name": "regcred"},
                    "type": "kubernetes.io/dockerconfigjson",
                    "stringData": {".dockerconfigjson": dockerconfig},
                },
            )
        )
        cluster.pods.create(
            "default",
            {
                "metadata": {"name": "p"},
                "spec": {
                    "containers": [{"name": "c", "image": PRIVATE}],
                    "imagePullSecrets": [{"name": "regcred"}],
                },
            },
        )
        for _ in range(200):
            pod = cluster.pods.get("default", "p")
            if pod["status"]["phase"] == "Running":
                break
            await asyncio.sleep(0.01)
    try:
        assert pod["status"]["phase"] == "Running"
        assert any(entry["event"] == "pull_finished" for entry in logs)
        exposed = json.dumps(
            [
                [repr(e) for e in logs],
                created,
                cluster.pods.list("default"),
                cluster.events.list(),
                metrics.render()[0].decode(),
            ]
        )
        assert PASSWORD not in exposed
        assert auth not in exposed
    finally:
        await cluster.stop()
        state.close()
        structlog.reset_defaults()
