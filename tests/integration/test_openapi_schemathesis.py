"""schemathesis against the daemon's own `/openapi.json`: no 5xx, and JSON out wherever declared.

One daemon (a real process on loopback, fast test config) serves the whole run; schemathesis
loads the document from it and generates requests for every operation: positive and negative
bodies, parameters and paths from the Kubernetes v1.32 core/v1 schemas. Each response must not
be a server error, must carry the declared content type, must use a declared status code and
must match the declared response schema; and every JSON body must be strict JSON as Go decodes
it (schemathesis parses with Python's `json`, which takes `NaN` and `Infinity`): no non-finite
numbers, no integer outside int64. Reads, patches and deletes also run once against a real object
of each kind, so real Pods, Secrets, Events, the Node... are checked against their schemas.

What is left out, and why:
- Zero times are allowed to be `null` (see `daemon_document`), as the apiserver writes them.
- `watch=true` is dropped from queries: a watch streams until `timeoutSeconds` and is not one
  JSON document (tests/daemon/test_watches.py covers watches); so is a log's `follow=true`,
  held open while its container runs (tests/daemon/test_log_follow.py).
- A request line longer than aiohttp's limit (8190 bytes) is answered by its HTTP parser with
  a plain-text 400: only "not a 5xx" and the status are checked for those.
- `negative_data_rejection` is not run: a repeated query parameter (`?timeoutSeconds=1&
  timeoutSeconds=x`) violates the document's scalar types, yet the apiserver's parameter codec
  takes the first value as the daemon does; with it, `make fuzz` reports only that. It was run
  once: it found lists ignoring a malformed `timeoutSeconds` and the document calling it an
  integer while the daemon takes fractions, both fixed.
- `positive_data_acceptance` is not run: a schema-valid request is often rightly refused, as
  the apiserver refuses it, because the OpenAPI schemas do not encode the rules behind their
  strings (label and field selector grammar, RFC 1123 names, quantities, known images).

The run is bounded for `make test`: KUBESIM_FUZZ_EXAMPLES (default 10) examples per operation and
mode, and negative data only where there is a query or a body to break, except the Pod body
(Hypothesis needs about a minute to build invalid Pods from its schema). `make fuzz` sets
KUBESIM_FUZZ_FULL=1 and many more examples: negative data everywhere, Pods included. The
schemathesis pytest plugin's lazy `from_fixture` does not work under pytest 9, so the test drives
schemathesis' per-operation Hypothesis strategies itself and reports every failure at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from conftest import NODE, DaemonFactory, RunningDaemon, fast_config
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import APIOperation, Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.integration

INT64 = 2**63


def _refuse_constant(name: str) -> float:
    raise AssertionError(f"{name} is not JSON")


def _int64(text: str) -> int:
    value = int(text)
    assert -INT64 <= value < INT64, f"{text} is outside int64"
    return value


def strict_json(_ctx: CheckContext, response: Response, _case: Case) -> bool | None:
    """Every JSON body parses as Go's encoding/json would type it for Kubernetes clients."""
    media = ",".join(response.headers.get("content-type", [])).split(";")[0].strip()
    if media != "application/json" and not media.endswith("+json"):
        return None
    json.loads(response.content, parse_constant=_refuse_constant, parse_int=_int64)
    return True


EXAMPLES = int(os.environ.get("KUBESIM_FUZZ_EXAMPLES", "10"))
FULL = os.environ.get("KUBESIM_FUZZ_FULL") == "1"
ZERO_TIMES_ARE_NULL = (
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
)
SECRET = {"metadata": {"name": "fuzz-secret"}, "stringData": {"token": "not-for-output"}}
# Negative bodies of the large kinds cost Hypothesis seconds each to build: `make test` fuzzes
# each body schema negatively once (a Deployment's and a ReplicaSet's through POST), not again
# through PUT; `make fuzz` runs them all.
SLOW_NEGATIVE = {
    "POST /api/v1/namespaces/{namespace}/pods",
    "PUT /api/v1/namespaces/{namespace}/pods/{name}",
    "PUT /api/v1/namespaces/{namespace}/pods/{name}/status",
    "PUT /apis/apps/v1/namespaces/{namespace}/deployments/{name}",
    "PUT /apis/apps/v1/namespaces/{namespace}/replicasets/{name}",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    strict_json,
]


# A request line past aiohttp's 8190 bytes is refused by its HTTP parser, before any handler,
# with a plain-text 400 (Go's net/http answers a plain-text 414 there): no Status to check.
MAX_REQUEST_TARGET = 8100  # a margin for the method and protocol on the request line
PROTOCOL_CHECKS = [not_a_server_error, status_code_conformance]


def worth_running(operation: APIOperation, mode: GenerationMode) -> bool:
    if mode is GenerationMode.POSITIVE or FULL:
        return True
    return bool(operation.query or operation.body) and operation.label not in SLOW_NEGATIVE


@pytest.fixture
def fuzzed_daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    factory = DaemonFactory(tmp_path)
    yield factory(fast_config())
    factory.close()


def daemon_document(daemon: RunningDaemon) -> dict[str, Any]:
    """`/openapi.json` with zero times nullable: the apiserver writes a zero `metav1.Time` or
    `MicroTime` as `null` (a pod condition's `lastProbeTime`, an event's `eventTime`) although
    the upstream schemas type them as strings; the daemon answers as the apiserver does."""
    doc: dict[str, Any] = daemon.api("GET", "/openapi.json")
    for name in ZERO_TIMES_ARE_NULL:
        doc["components"]["schemas"][name]["nullable"] = True
    return doc


def workload(name: str) -> dict[str, Any]:
    """A Deployment or ReplicaSet body of one replica (their controllers make its pod)."""
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
            },
        },
    }


def existing_objects(daemon: RunningDaemon) -> dict[str, str]:
    """One object of each kind, by the plural its item path names, so reads, patches and
    deletes reach real objects and their responses are checked against the schemas too."""
    daemon.create_pod("fuzz-pod", "busybox:1.36")
    daemon.api("POST", "/api/v1/namespaces/default/secrets", SECRET)
    daemon.api("POST", "/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "sa"}})
    for plural in ("deployments", "replicasets"):
        daemon.api("POST", f"/apis/apps/v1/namespaces/default/{plural}", workload("fuzz-" + plural))
    events = daemon.api("GET", "/api/v1/namespaces/default/events")["items"]
    return {
        "deployments": "fuzz-deployments",
        "replicasets": "fuzz-replicasets",
        "pods": "fuzz-pod",
        "secrets": "fuzz-secret",
        "serviceaccounts": "sa",
        "events": events[0]["metadata"]["name"],
        "nodes": NODE,
        "namespaces": "default",
        "leases": NODE,  # in kube-node-lease (NAMESPACES)
    }


# The namespace of the existing object of a plural, when it is not "default".
NAMESPACES = {"leases": "kube-node-lease"}


# About a minute on an idle machine, most of it Hypothesis building bodies; a loaded one (the
# whole suite beside other work) has taken past the suite's 120 s, whose alarm then fails
# whichever example is running. The bound is for a hang, not a budget.
@pytest.mark.timeout(300)
def test_the_daemon_answers_every_generated_request_as_its_document_says(
    fuzzed_daemon: RunningDaemon,
) -> None:
    schema = schemathesis.openapi.from_dict(daemon_document(fuzzed_daemon))
    existing = existing_objects(fuzzed_daemon)
    sent = 0
    failures: dict[str, str] = {}

    def call(case: Case) -> None:
        nonlocal sent
        if case.query:
            case.query.pop("watch", None)
            case.query.pop("follow", None)
        sent += 1
        response = case.call(base_url=fuzzed_daemon.base_url, timeout=10)
        target = urlsplit(response.request.url or "")
        protocol_error = len(target.path) + len(target.query) > MAX_REQUEST_TARGET
        case.validate_response(response, checks=PROTOCOL_CHECKS if protocol_error else CHECKS)

    def run(label: str, strategy: SearchStrategy[Case], *, negative: bool = False) -> None:
        check = settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=os.environ.get("KUBESIM_FUZZ_RANDOM") is None,
        )(given(strategy)(call))
        try:
            check()
        except Unsatisfiable:
            # Only string path parameters with no constraint: nothing can be invalid.
            if not negative:
                raise
        # schemathesis raises its FailureGroup, a BaseExceptionGroup, for distinct failures.
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report them all
            failures[label] = str(exc)

    operations = [result.ok() for result in schema.get_all_operations()]
    # Existing objects first, deletes last: each item operation once on a real object.
    for operation in sorted(operations, key=lambda op: op.method == "delete"):
        if operation.path.endswith("{name}"):
            plural = operation.path.split("/")[-2]
            ids = {"name": existing[plural]}
            if "{namespace}" in operation.path:
                ids["namespace"] = NAMESPACES.get(plural, "default")
            strategy = operation.as_strategy(path_parameters=ids)
            run(f"{operation.label} (existing {plural})", strategy)
    for operation in operations:
        for mode in GenerationMode:
            if worth_running(operation, mode):
                strategy = operation.as_strategy(generation_mode=mode)
                run(f"{operation.label} ({mode})", strategy, negative=mode.is_negative)
    print(f"schemathesis: {sent} requests sent")
    assert not failures, "\n\n".join(f"== {k}\n{v}" for k, v in failures.items())
    assert fuzzed_daemon.running()
