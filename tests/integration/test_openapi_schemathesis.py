"""schemathesis against the daemon's own `/openapi.json`: no 5xx, and JSON out wherever declared.

One daemon (a real process on loopback, fast test config) serves the whole module; schemathesis
loads the document from it and generates requests for every operation: positive and negative
bodies, parameters and paths from the Kubernetes v1.32 core/v1 schemas. Each response must not
be a server error, must carry the declared content type, must use a declared status code and
must match the declared response schema; and every JSON body must be strict JSON as Go decodes
it (schemathesis parses with Python's `json`, which takes `NaN` and `Infinity`): no non-finite
numbers, no integer outside int64.

What is left out, and why:
- `watch=true` is dropped from queries: a watch streams until `timeoutSeconds` and is not one
  JSON document (tests/daemon/test_watches.py covers watches).
- `negative_data_rejection` / `positive_data_acceptance` are not run: the daemon is the kubelet's
  image manager behind a Kubernetes-shaped API, not an apiserver; it accepts documents the
  upstream schemas would refuse (fields it ignores, looser types it reads) and refuses some
  they allow (unknown images, names that fail the apiserver's validation, which the OpenAPI
  schemas do not encode).

The run is bounded for `make test`: KUBESIM_FUZZ_EXAMPLES (default 10) examples per operation and
mode, and negative data only where there is a query or a body to break, except the Pod body
(Hypothesis needs about a minute to build invalid Pods from its schema). `make fuzz` sets
KUBESIM_FUZZ_FULL=1 and many more examples: negative data everywhere, Pods included. The schemathesis pytest plugin's
lazy `from_fixture` does not work under pytest 9, so the test drives schemathesis' per-operation
Hypothesis strategies itself and reports every failing operation at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from conftest import DaemonFactory, RunningDaemon, fast_config
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
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
SLOW_NEGATIVE = {"POST /api/v1/namespaces/{namespace}/pods"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    strict_json,
]


def worth_running(operation: APIOperation, mode: GenerationMode) -> bool:
    if mode is GenerationMode.POSITIVE or FULL:
        return True
    return bool(operation.query or operation.body) and operation.label not in SLOW_NEGATIVE


@pytest.fixture
def fuzzed_daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    factory = DaemonFactory(tmp_path)
    yield factory(fast_config())
    factory.close()


def test_the_daemon_answers_every_generated_request_as_its_document_says(
    fuzzed_daemon: RunningDaemon,
) -> None:
    schema = schemathesis.openapi.from_url(fuzzed_daemon.base_url + "/openapi.json")
    sent = 0
    failures: dict[str, str] = {}

    def call(case: Case) -> None:
        nonlocal sent
        if case.query:
            case.query.pop("watch", None)
        sent += 1
        case.call_and_validate(base_url=fuzzed_daemon.base_url, checks=CHECKS, timeout=10)

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:
            if not worth_running(operation, mode):
                continue
            check = settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                derandomize=os.environ.get("KUBESIM_FUZZ_RANDOM") is None,
            )(given(operation.as_strategy(generation_mode=mode))(call))
            try:
                check()
            except Unsatisfiable:
                # Only string path parameters with no constraint: nothing can be invalid.
                if mode is GenerationMode.POSITIVE:
                    raise
            # schemathesis raises its FailureGroup, a BaseExceptionGroup, for distinct failures.
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report them all
                failures[f"{operation.label} ({mode})"] = str(exc)
    print(f"schemathesis: {sent} requests sent")
    assert not failures, "\n\n".join(f"== {k}\n{v}" for k, v in failures.items())
    assert fuzzed_daemon.running()
