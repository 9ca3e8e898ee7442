"""apps/v1 Deployments and ReplicaSets: their storage, the API server's rules, and the
`Objects` view the workload controllers work through.

Both kinds live in `ObjectTable`s written through to the state store, so a restart finds them
and the controllers pick up where they were. Writes follow the apps/v1 strategy: defaults
(replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds 600, the
pod template's defaults and pull policies), validation with the apiserver's texts (a selector
is required and must match the template's labels, maxSurge and maxUnavailable not both zero,
the selector immutable), `metadata.generation` raised by every spec change and only by it, and
the status written only through `/status` (or by the controllers). A dry run checks and
answers without storing.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.daemon.changefeed import ChangeFeed
from kubesim_images.daemon.eventstore import EventStore
from kubesim_images.daemon.kube import ApiError, bad_request, invalid
from kubesim_images.daemon.objects import (
    ObjectTable,
    body_meta,
    check_kind,
    check_patched_meta,
    keep_created,
    merge_patch,
    require_name,
)
from kubesim_images.daemon.options import NO_OPTIONS, DeleteOptions, check_preconditions
from kubesim_images.daemon.pods import PodRecord, PodStore
from kubesim_images.daemon.podupdate import SpecMerge, default_spec, patch_spec
from kubesim_images.daemon.quantities import check_template_quantities
from kubesim_images.daemon.validation import (
    metadata_causes,
    name_causes,
    namespace_causes,
)
from kubesim_images.pod import FieldError, PodInvalidError, pod_from_manifest
from kubesim_images.podworkers import containers_ready_condition
from kubesim_images.workloads import rollout
from kubesim_images.workloads.objects import Obj, ObjectsError, selector_matches, selector_string

PLURALS = {"Deployment": "deployments", "ReplicaSet": "replicasets"}
# The simulation's own limit, not the apiserver's (int32): every replica is a pod the one node
# syncs, and a typo of a few zeros must not start a million pod workers.
MAX_REPLICAS = 5000
SELECTOR_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})
KINDS = {plural: kind for kind, plural in PLURALS.items()}


def _causes_error(kind: str, name: str, causes: list[FieldError]) -> ApiError:
    """422 Invalid, named by the qualified kind as the apiserver names it (`Deployment.apps`),
    its details by kind and group."""
    error = invalid(f"{kind}.apps", name, causes)
    error.details = {**(error.details or {}), "kind": kind, "group": "apps"}
    return error


def _require_valid(kind: str, name: str, causes: list[FieldError]) -> None:
    if causes:
        raise _causes_error(kind, name, causes[:20])  # bounded, as validation.require_valid


class WorkloadStorage:
    """`storage.Storage` of one apps/v1 kind, as the apiserver's apps/v1 registry keeps it,
    with the `/status` and `/scale` subresources and the controllers' status writes."""

    def __init__(
        self,
        kind: str,
        table: ObjectTable,
        feed: ChangeFeed,
        clock: WallClock,
        *,
        always_pull_images: bool = False,
    ) -> None:
        self.kind = kind
        self.table = table
        self._feed = feed
        self._clock = clock
        self._always_pull_images = always_pull_images

    # -- reads ----------------------------------------------------------------------------------
    def list(self, namespace: str | None) -> list[Obj]:
        return [
            doc
            for (ns, _), doc in sorted(self.table.items())
            if namespace is None or ns == namespace
        ]

    def get(self, namespace: str, name: str) -> Obj:
        return self.table.require(namespace, name)

    # -- writes ---------------------------------------------------------------------------------
    def create(self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False) -> Obj:
        kind = self.kind
        body = check_kind(body, kind, "apps/v1")
        meta = body_meta(body, namespace)
        name = require_name(meta, kind)
        _require_valid(
            kind, name, name_causes(name) + namespace_causes(namespace) + metadata_causes(meta)
        )
        self.table.require_absent(namespace, name)
        doc: Obj = {
            "kind": kind,
            "apiVersion": "apps/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "creationTimestamp": self._clock.rfc3339(self._clock.now_ns()),
            },
            "spec": copy.deepcopy(body.get("spec")),
            "status": {},
        }
        for key in ("labels", "annotations", "ownerReferences"):
            if meta.get(key):
                doc["metadata"][key] = copy.deepcopy(meta[key])
        _check_owner_refs(kind, name, doc["metadata"].get("ownerReferences"))
        self._default_and_validate(doc, None)
        if kind == "Deployment" and not doc["metadata"].get("labels"):
            # The apiserver defaults a Deployment's labels to its template's (apps/v1 defaults).
            doc["metadata"]["labels"] = dict(
                doc["spec"]["template"]["metadata"].get("labels") or {}
            )
        if not dry_run:
            doc["metadata"]["resourceVersion"] = str(self._feed.next_version())
            self.table.put(doc)
        return doc

    def patch(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
        merge: SpecMerge = SpecMerge.JSON,
    ) -> Obj:
        """A merge or strategic merge patch (the template's containers merge by name, what
        `kubectl set image` sends), or a JSON patch's result (`kubectl rollout undo`)."""
        if "__replace__" in patch:
            return self.update(
                namespace, name, patch["__replace__"], merge=SpecMerge.REPLACE, dry_run=dry_run
            )
        return self.update(namespace, name, patch, merge=merge, dry_run=dry_run)

    def replace(
        self, namespace: str, name: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> Obj:
        return self.update(namespace, name, body, merge=SpecMerge.REPLACE, dry_run=dry_run)

    def update(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        merge: SpecMerge,
        dry_run: bool,
    ) -> Obj:
        """A patch (merge or strategic) or, with SpecMerge.REPLACE, the whole object. The status
        is the controllers'; what a client sends of it here is ignored, as upstream."""
        kind = self.kind
        before = self.get(namespace, name)
        if merge is SpecMerge.REPLACE:
            body = check_kind(patch, kind, "apps/v1")
            meta = body_meta(body, namespace)
            version = meta.get("resourceVersion")
            if version and version != before["metadata"]["resourceVersion"]:
                raise _conflict(kind, name)
            doc = {
                **copy.deepcopy(before),
                "spec": copy.deepcopy(body.get("spec")),
                "metadata": {
                    **copy.deepcopy(before["metadata"]),
                    **{k: copy.deepcopy(meta.get(k)) for k in ("labels", "annotations")},
                },
            }
        else:
            doc = merge_patch(
                before, {k: v for k, v in patch.items() if k not in {"spec", "status"}}
            )
            if "spec" in patch:
                doc["spec"] = _patch_workload_spec(before.get("spec") or {}, patch["spec"], merge)
            doc["status"] = copy.deepcopy(before.get("status") or {})
        if not isinstance(doc.get("metadata"), dict):
            raise bad_request("metadata must be an object")
        doc["kind"], doc["apiVersion"] = kind, "apps/v1"  # what a patch says of these is moot
        doc["metadata"] = {k: v for k, v in doc["metadata"].items() if v is not None}
        keep_created(doc, before)
        check_patched_meta(doc, before, self.table.resource)
        _require_valid(kind, name, metadata_causes(doc["metadata"]))
        _check_owner_refs(kind, name, doc["metadata"].get("ownerReferences"))
        self._default_and_validate(doc, before)
        return self._store(doc, before, dry_run=dry_run)

    def replace_status(
        self, namespace: str, name: str, status: Any, *, dry_run: bool = False
    ) -> Obj:
        """PUT `/status`: the status only; the spec and metadata stay as stored."""
        before = self.get(namespace, name)
        if not isinstance(status, Mapping):
            raise bad_request("status must be an object")
        doc = {**before, "status": copy.deepcopy(dict(status))}
        return self._store(doc, before, dry_run=dry_run)

    def write_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Obj:
        """A controller's status write: saved, one new resourceVersion, one MODIFIED."""
        return self.replace_status(namespace, name, status)

    def _store(self, doc: Obj, before: Obj, *, dry_run: bool) -> Obj:
        if doc.get("spec") != before.get("spec"):
            doc["metadata"]["generation"] = int(before["metadata"].get("generation", 1)) + 1
        if doc == before or dry_run:
            return doc
        doc["metadata"]["resourceVersion"] = str(self._feed.next_version())
        self.table.put(doc)
        return doc

    async def delete(
        self,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        options: DeleteOptions = NO_OPTIONS,
    ) -> Obj:
        """The object goes now, if it meets the DELETE's preconditions (409 otherwise); what it
        owns follows (the controllers' background cascade)."""
        check_preconditions(self.get(namespace, name), options, self.table.resource, group="apps")
        if dry_run:
            return copy.deepcopy(self.get(namespace, name))
        return self.table.remove(namespace, name)

    # -- scale subresource ----------------------------------------------------------------------
    def scale(self, namespace: str, name: str) -> Obj:
        """`/scale` as an autoscaling/v1 Scale (what `kubectl scale` reads and patches)."""
        doc = self.get(namespace, name)
        meta = doc["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": doc["spec"].get("replicas", 1)},
            "status": {
                "replicas": (doc.get("status") or {}).get("replicas", 0),
                "selector": selector_string(doc["spec"].get("selector")),
            },
        }

    def set_scale(self, namespace: str, name: str, body: Any, *, dry_run: bool = False) -> Obj:
        spec = body.get("spec") if isinstance(body, Mapping) else None
        replicas = spec.get("replicas") if isinstance(spec, Mapping) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise bad_request("spec.replicas must be an integer")
        meta = body.get("metadata") if isinstance(body, Mapping) else None
        version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
        current = self.get(namespace, name)
        if version and version != current["metadata"]["resourceVersion"]:
            raise _conflict(self.kind, name)
        self.update(
            namespace, name, {"spec": {"replicas": replicas}}, merge=SpecMerge.JSON, dry_run=dry_run
        )
        out = self.scale(namespace, name)
        out["spec"]["replicas"] = replicas  # a dry run's answer: what it would have become
        return out

    # -- the apps/v1 strategy -------------------------------------------------------------------
    def _default_and_validate(self, doc: Obj, before: Obj | None) -> None:
        kind = self.kind
        name = doc["metadata"]["name"]
        spec = doc.get("spec")
        if not isinstance(spec, dict):
            raise _causes_error(
                kind, name, [FieldError("spec.selector", "FieldValueRequired", "Required value")]
            )
        spec.setdefault("replicas", 1)
        if kind == "Deployment":
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            if not isinstance(strategy, dict):
                raise bad_request("spec.strategy must be an object")
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                params = strategy.setdefault("rollingUpdate", {})
                if isinstance(params, dict):
                    params.setdefault("maxSurge", rollout.DEFAULT_MAX_SURGE)
                    params.setdefault("maxUnavailable", rollout.DEFAULT_MAX_UNAVAILABLE)
        # The decoder's refusal of a quantity first (400), then validation's causes (422).
        causes = _spec_causes(kind, doc, before) + check_template_quantities(kind, spec)
        if causes:
            raise _causes_error(kind, name, causes)
        template = spec["template"]
        try:
            pod = pod_from_manifest(
                {"metadata": {"name": name}, "spec": template.get("spec")},
                namespace=doc["metadata"]["namespace"],
                always_pull_images=self._always_pull_images,
            )
        except PodInvalidError as exc:
            raise _causes_error(
                kind,
                name,
                [FieldError(f"spec.template.{c.field}", c.reason, c.message) for c in exc.causes],
            ) from None
        default_spec(template["spec"], pod)
        template["spec"].setdefault("securityContext", {})
        template.setdefault("metadata", {})


def _check_owner_refs(kind: str, name: str, refs: Any) -> None:
    """ownerReferences as `metav1.OwnerReference` decodes them: objects with string apiVersion,
    kind, name and uid (the controllers and the cascade read them)."""
    if refs is None:
        return
    fields = ("apiVersion", "kind", "name", "uid")
    if not isinstance(refs, list) or not all(
        isinstance(r, Mapping) and all(isinstance(r.get(f), str) and r[f] for f in fields)
        for r in refs
    ):
        raise _causes_error(
            kind,
            name,
            [
                FieldError(
                    "metadata.ownerReferences",
                    "FieldValueInvalid",
                    "Invalid value: each needs apiVersion, kind, name and uid",
                )
            ],
        )


def _conflict(kind: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {PLURALS[kind]}.apps "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        details={"name": name, "group": "apps", "kind": PLURALS[kind]},
    )


def _patch_workload_spec(current: Mapping[str, Any], patch: Any, merge: SpecMerge) -> Obj:
    """A spec patch; the template's pod spec merges its containers by name under a strategic
    merge patch (what `kubectl set image deployment/web app=...` sends)."""
    if not isinstance(patch, Mapping):
        raise bad_request("spec must be an object")
    template_patch = patch.get("template")
    rest = {k: v for k, v in patch.items() if k != "template" and not k.startswith("$")}
    out = dict(merge_patch(current, rest))
    if template_patch is None and "template" in patch:
        out.pop("template", None)
    elif isinstance(template_patch, Mapping):
        template = dict(current.get("template") or {})
        merged = dict(
            merge_patch(
                template,
                {k: v for k, v in template_patch.items() if k != "spec" and not k.startswith("$")},
            )
        )
        if isinstance(template_patch.get("spec"), Mapping):
            merged["spec"] = patch_spec(template.get("spec") or {}, template_patch["spec"], merge)
        elif "spec" in template_patch:
            merged["spec"] = copy.deepcopy(template_patch["spec"])  # refused by validation
        out["template"] = merged
    elif template_patch is not None:
        out["template"] = copy.deepcopy(template_patch)  # not an object: refused by validation
    return out


def _int_field(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _spec_causes(kind: str, doc: Obj, before: Obj | None) -> list[FieldError]:
    spec = doc["spec"]
    causes: list[FieldError] = []
    replicas = spec.get("replicas")
    if not _int_field(replicas):
        causes.append(
            FieldError("spec.replicas", "FieldValueInvalid", "Invalid value: must be an integer")
        )
    elif replicas < 0:
        causes.append(
            FieldError(
                "spec.replicas",
                "FieldValueInvalid",
                f"Invalid value: {replicas}: must be greater than or equal to 0",
            )
        )
    elif replicas > MAX_REPLICAS:
        causes.append(
            FieldError(
                "spec.replicas",
                "FieldValueInvalid",
                f"Invalid value: {replicas}: must be at most {MAX_REPLICAS} in this simulation "
                "(every replica is a pod the one node syncs)",
            )
        )
    selector = spec.get("selector")
    template = spec.get("template")
    shape = _selector_shape(selector)
    if shape is not None:
        return [*causes, shape]
    if isinstance(template, dict) and not isinstance(template.get("metadata") or {}, dict):
        return [
            *causes,
            FieldError(
                "spec.template.metadata", "FieldValueInvalid", "Invalid value: must be an object"
            ),
        ]
    if isinstance(template, dict):
        meta = template.get("metadata") or {}
        causes.extend(
            FieldError(f"spec.template.{c.field}", c.reason, c.message)
            for c in metadata_causes(meta)
        )
    if not isinstance(selector, Mapping) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        causes.append(FieldError("spec.selector", "FieldValueRequired", "Required value"))
        causes.append(
            FieldError(
                "spec.selector",
                "FieldValueInvalid",
                "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is "
                "invalid for deployment"
                if kind == "Deployment"
                else "Invalid value: empty selector is invalid",
            )
        )
    if not isinstance(template, dict):
        causes.append(
            FieldError("spec.template.spec.containers", "FieldValueRequired", "Required value")
        )
        return causes
    labels = (template.get("metadata") or {}).get("labels") or {}
    if isinstance(selector, Mapping) and not selector_matches(selector, labels) and not causes:
        shown = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
        causes.append(
            FieldError(
                "spec.template.metadata.labels",
                "FieldValueInvalid",
                f"Invalid value: map[string]string{{{shown}}}: `selector` does not match "
                "template `labels`",
            )
        )
    if before is not None and spec.get("selector") != (before.get("spec") or {}).get("selector"):
        causes.append(
            FieldError("spec.selector", "FieldValueInvalid", "Invalid value: field is immutable")
        )
    for field in ("minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        value = spec.get(field)
        if value is not None and (not _int_field(value) or value < 0):
            causes.append(
                FieldError(
                    f"spec.{field}",
                    "FieldValueInvalid",
                    f"Invalid value: {value}: must be greater than or equal to 0",
                )
            )
    if kind == "Deployment":
        causes.extend(_strategy_causes(spec))
    return causes


def _selector_shape(selector: Any) -> FieldError | None:
    """A LabelSelector's Go types: matchLabels a string map, matchExpressions a list of
    {key, operator, values: [string]} with a known operator."""
    if selector is None:
        return None
    if not isinstance(selector, Mapping):
        return FieldError("spec.selector", "FieldValueInvalid", "Invalid value: must be an object")
    labels = selector.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        return FieldError(
            "spec.selector.matchLabels",
            "FieldValueInvalid",
            "Invalid value: must map strings to strings",
        )
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return FieldError(
            "spec.selector.matchExpressions", "FieldValueInvalid", "Invalid value: must be a list"
        )
    for i, expr in enumerate(expressions):
        where = f"spec.selector.matchExpressions[{i}]"
        if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str):
            return FieldError(f"{where}.key", "FieldValueRequired", "Required value")
        operator = expr.get("operator")
        if operator not in SELECTOR_OPERATORS:
            return FieldError(
                f"{where}.operator",
                "FieldValueInvalid",
                f'Invalid value: "{operator}": not a valid selector operator',
            )
        values = expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return FieldError(
                f"{where}.values", "FieldValueInvalid", "Invalid value: must be a list of strings"
            )
    return None


def _strategy_causes(spec: Mapping[str, Any]) -> list[FieldError]:
    strategy = spec["strategy"]
    kind = strategy.get("type")
    if not isinstance(kind, str) or kind not in {"RollingUpdate", "Recreate"}:
        return [
            FieldError(
                "spec.strategy.type",
                "FieldValueNotSupported",
                f'Unsupported value: "{kind}": supported values: "Recreate", "RollingUpdate"',
            )
        ]
    if kind == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            return [
                FieldError(
                    "spec.strategy.rollingUpdate",
                    "FieldValueForbidden",
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                )
            ]
        return []
    params = strategy.get("rollingUpdate")
    if not isinstance(params, Mapping):
        return [
            FieldError(
                "spec.strategy.rollingUpdate",
                "FieldValueInvalid",
                "Invalid value: must be an object",
            )
        ]
    causes: list[FieldError] = []
    values = {}
    for field in ("maxSurge", "maxUnavailable"):
        value = params.get(field)
        try:
            values[field] = rollout.scaled_value(value, 100, round_up=False)
        except rollout.IntOrStringError:
            causes.append(
                FieldError(
                    f"spec.strategy.rollingUpdate.{field}",
                    "FieldValueInvalid",
                    f"Invalid value: {value!r}: a valid IntOrString must be an integer or a "
                    "percentage (e.g. '25%')",
                )
            )
            continue
        if values[field] < 0:
            causes.append(
                FieldError(
                    f"spec.strategy.rollingUpdate.{field}",
                    "FieldValueInvalid",
                    f"Invalid value: {value}: must be greater than or equal to 0",
                )
            )
    if values.get("maxUnavailable", 0) > 100 and isinstance(params.get("maxUnavailable"), str):
        causes.append(
            FieldError(
                "spec.strategy.rollingUpdate.maxUnavailable",
                "FieldValueInvalid",
                f'Invalid value: "{params["maxUnavailable"]}": must not be greater than 100%',
            )
        )
    if not causes and values.get("maxSurge") == 0 and values.get("maxUnavailable") == 0:
        causes.append(
            FieldError(
                "spec.strategy.rollingUpdate.maxUnavailable",
                "FieldValueInvalid",
                f"Invalid value: {params['maxUnavailable']!r}: may not be 0 when `maxSurge` is 0",
            )
        )
    return causes


class ControllerObjects:
    """The controllers' view of the API (`workloads.objects.Objects`) over the daemon's pods,
    workload storages and events."""

    def __init__(
        self,
        pods: PodStore,
        workloads: Mapping[str, WorkloadStorage],
        events: EventStore,
        clock: WallClock,
        admit_create: Callable[[str, str, str], None],
    ) -> None:
        self._pods = pods
        self._workloads = workloads
        self._events = events
        self._clock = clock
        # The namespace admission a client's create goes through (resource, namespace, name):
        # a controller creates nothing in a missing or Terminating namespace either.
        self._admit_create = admit_create

    def list(self, kind: str, namespace: str) -> list[Obj]:
        if kind == "Pod":
            return [
                self._pod_view(record)
                for record in self._pods.records.values()
                if not namespace or record.status.pod.namespace == namespace
            ]
        return self._workloads[kind].list(namespace or None)

    def _pod_view(self, record: PodRecord) -> Obj:
        """What the controllers read of a pod (metadata, phase, Ready, restarts), without
        rendering it: a change of the node's images forgets every pod's rendering, and a
        ReplicaSet sync that rendered its 500 pods again each time spent its time there."""
        if record.rendered is not None:
            return record.rendered
        status = record.status
        ready, _ = containers_ready_condition(status)
        meta = record.manifest["metadata"]
        since = (
            self._clock.rfc3339(status.images_ready_at)
            if status.images_ready_at is not None
            else meta["creationTimestamp"]
        )
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": meta,
            "status": {
                "phase": "Running" if ready else "Pending",
                "conditions": [
                    {"type": "Ready", "status": str(ready), "lastTransitionTime": since}
                ],
                "containerStatuses": [{"restartCount": cs.restarts} for cs in status.statuses],
            },
        }

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            if kind == "Pod":
                return self._pods.get(namespace, name)
            return self._workloads[kind].get(namespace, name)
        except ApiError:
            return None

    def create(self, kind: str, namespace: str, body: Obj) -> Obj:
        """As a client's create; a refusal is an `ObjectsError` with the API's message."""
        try:
            self._admit_create(
                "pods" if kind == "Pod" else PLURALS[kind], namespace, body["metadata"]["name"]
            )
            if kind == "Pod":
                return self._pods.create(namespace, body)
            return self._workloads[kind].create(namespace, body)
        except ApiError as exc:
            causes = (exc.details or {}).get("causes") or []
            terminating = any(c.get("reason") == "NamespaceTerminating" for c in causes)
            raise ObjectsError(exc.message, namespace_terminating=terminating) from exc

    def update(self, kind: str, doc: Obj) -> Obj:
        meta = doc["metadata"]
        body = {**doc, "metadata": {**meta, "resourceVersion": None}}
        return self._workloads[kind].replace(meta["namespace"], meta["name"], body)

    def update_status(self, kind: str, doc: Obj) -> Obj:
        meta = doc["metadata"]
        return self._workloads[kind].write_status(meta["namespace"], meta["name"], doc["status"])

    async def delete(self, kind: str, namespace: str, name: str, uid: str) -> None:
        current = self.get(kind, namespace, name)
        if current is None or current["metadata"]["uid"] != uid:
            return  # already gone, or another object took the name
        options = DeleteOptions(uid=uid)  # as the controllers send it: this object, no other
        if kind == "Pod":
            await self._pods.delete(namespace, name, options=options)
        else:
            await self._workloads[kind].delete(namespace, name, options=options)

    def event(self, obj: Obj, kind: str, reason: str, message: str, component: str) -> None:
        meta = obj["metadata"]
        involved = {
            "kind": obj["kind"],
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": obj.get("apiVersion", "apps/v1"),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        self._events.record(involved, kind, reason, message, component)
