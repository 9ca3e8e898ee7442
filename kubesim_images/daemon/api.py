"""The HTTP API: routes, body decoding, Status errors, Tables, watches and auth.

Every request is validated at this edge. Whatever a client sends, the answer is a Kubernetes
object or a `Status` (400 malformed, 401 without the bearer token, 404, 409, 413 over the body
limit, 415, 422 with field causes), never a traceback; an unexpected failure is logged with its
stack and answered 500 `InternalError`.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from kubesim_images.daemon import access, debug, kube, leases, openapi, openapiv2, whoami
from kubesim_images.daemon.apps import KINDS as KIND_BY_PLURAL
from kubesim_images.daemon.apps import WorkloadStorage
from kubesim_images.daemon.bodies import (
    APPLY_PATCH_YAML,
    BODY_TIMEOUT,
    applied_object,
    read_object,
    read_patch,
)
from kubesim_images.daemon.changefeed import Change, ExpiredError
from kubesim_images.daemon.cluster import Cluster
from kubesim_images.daemon.discovery import (
    KUBE_VERSION,
    api_groups,
    api_versions,
    group_documents,
    resource_lists,
)
from kubesim_images.daemon.fieldvalidation import field_validation_middleware, prune
from kubesim_images.daemon.kube import ApiError, bad_request
from kubesim_images.daemon.listoptions import INITIAL_EVENTS_END, send_initial_events
from kubesim_images.daemon.objects import check_kind
from kubesim_images.daemon.options import (
    check_dry_run,
    check_patch,
    delete_dry_run,
    delete_options,
    dry_run,
    parse_delete_options,
)
from kubesim_images.daemon.paging import page
from kubesim_images.daemon.pods import PodStore
from kubesim_images.daemon.podstatus import patched_pod
from kubesim_images.daemon.podtools import add_pod_tool_routes
from kubesim_images.daemon.podupdate import SpecMerge
from kubesim_images.daemon.resources import Resource
from kubesim_images.daemon.selectors import (
    dotted,
    matches,
    parse_field_selector,
    parse_label_selector,
)
from kubesim_images.daemon.storage import Storage
from kubesim_images.daemon.watches import STOP, WatchCollector, WatchHub, next_bookmark
from kubesim_images.logging import get_logger
from kubesim_images.metrics import Metrics
from kubesim_images.registry.listing import catalogue_rows
from kubesim_images.state import StateError

_log = get_logger()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CLUSTER: web.AppKey[Cluster] = web.AppKey("cluster", Cluster)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
READY: web.AppKey[asyncio.Event] = web.AppKey("ready", asyncio.Event)
# Open watches: on shutdown each is ended, so a drain never waits on a watch.
WATCHES: web.AppKey[WatchHub] = web.AppKey("watches", WatchHub)
# How long a stopped watch may take to flush before its connection is aborted (a client that
# stopped reading never lets it flush).
WATCH_GRACE_SECONDS = 1.0


def _json(doc: Any, status: int = 200) -> web.Response:
    # allow_nan=False: the decoders refuse non-finite numbers, so none can be stored; should
    # one appear, a 500 is better than a body kubectl reads as an empty list.
    text = json.dumps(doc, allow_nan=False)
    return web.Response(status=status, text=text, content_type="application/json")


# -- middlewares -------------------------------------------------------------------------------
def error_middleware() -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return _json(exc.status(), exc.code)
        except StateError as exc:
            # Nothing of the write was saved or applied: the client may retry it as it is.
            _log.warning(
                "state_write_failed", method=request.method, path=request.path, error=str(exc)
            )
            error = ApiError(
                503,
                "ServiceUnavailable",
                f"the state store refused the write, nothing was changed: {exc}",
                details={"retryAfterSeconds": 1},
            )
            return _json(error.status(), 503)
        except web.HTTPRequestEntityTooLarge as exc:
            error = ApiError(
                413,
                "RequestEntityTooLarge",
                f"the request body is larger than the limit ({exc.text})",
            )
            return _json(error.status(), 413)
        except web.HTTPNotFound:
            error = ApiError(
                404, "NotFound", "the server could not find the requested resource", details={}
            )
            return _json(error.status(), 404)
        except web.HTTPMethodNotAllowed as exc:
            error = ApiError(
                405,
                "MethodNotAllowed",
                f"the server does not allow this method on the requested resource ({exc.method})",
            )
            return _json(error.status(), 405)
        except web.HTTPException as exc:
            error = ApiError(exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason)
            return _json(error.status(), exc.status)
        except (asyncio.CancelledError, ConnectionError):
            raise  # the client went away: aiohttp ends the connection without an answer
        except Exception:  # noqa: BLE001 - the edge: any bug becomes a 500 Status, not a crash
            _log.exception("request_failed", method=request.method, path=request.path)
            error = ApiError(
                500, "InternalError", "an internal error occurred; the daemon's log has the details"
            )
            return _json(error.status(), 500)

    return middleware


def edge_middleware(max_body_bytes: int, request_seen: Callable[[web.Request], None]) -> Any:
    """The first look at a request: its head arrived; a body announced too large is answered
    413 before a byte of it is read, and the connection is not kept alive (aiohttp drops what
    the client still sends for a few seconds, so it reads the answer rather than a reset)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_seen(request)
        length = request.content_length
        if length is not None and length > max_body_bytes:
            error = ApiError(
                413,
                "RequestEntityTooLarge",
                f"the request body is larger than the limit ({length} > {max_body_bytes} bytes)",
            )
            response = _json(error.status(), 413)
            response.force_close()
            return response
        return await handler(request)

    return middleware


def auth_middleware(token: str | None) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None and request.path != "/healthz":
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.encode()
            ):
                error = ApiError(401, "Unauthorized", "Unauthorized")
                return _json(error.status(), 401)
        return await handler(request)

    return middleware


# -- helpers -----------------------------------------------------------------------------------


def _filter(
    request: web.Request, docs: list[dict[str, Any]], fields: frozenset[str]
) -> list[dict[str, Any]]:
    field_req = parse_field_selector(request.query.get("fieldSelector"), fields)
    label_req = parse_label_selector(request.query.get("labelSelector"))
    out = []
    for doc in docs:
        labels: Mapping[str, str] = (doc.get("metadata") or {}).get("labels") or {}
        if matches(field_req, functools.partial(dotted, doc)) and matches(label_req, labels.get):
            out.append(doc)
    return out


def _namespace(request: web.Request) -> str | None:
    return request.match_info.get("namespace")


def _timeout_seconds(request: web.Request) -> float:
    """`timeoutSeconds` of a list or watch: a number (capped at an hour), else 400 as the
    apiserver answers list options it cannot decode."""
    try:
        timeout = min(float(request.query.get("timeoutSeconds", "1800")), 3600.0)
    except ValueError:
        raise bad_request("timeoutSeconds must be a number") from None
    if math.isnan(timeout):  # a NaN deadline would corrupt the event loop's timer heap
        raise bad_request("timeoutSeconds must be a number")
    _check_limit(request)
    return timeout


def _check_limit(request: web.Request) -> None:
    """`limit` must decode as the int64 of ListOptions (`paging.py` pages by it): else the
    apiserver's 400, Go's strconv text."""
    for text in request.query.getall("limit", [])[:1]:
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise bad_request(f'strconv.ParseInt: parsing "{text}": invalid syntax')
        if not -(2**63) <= int(text) < 2**63:
            raise bad_request(f'strconv.ParseInt: parsing "{text}": value out of range')


async def _listing(
    request: web.Request, kind: Resource, docs: list[dict[str, Any]]
) -> web.StreamResponse:
    """A LIST of `kind` (objects or a Table), or with `watch` its changes from now on."""
    docs = _filter(request, docs, kind.fields)
    _timeout_seconds(request)  # unused by a plain list, but refused when malformed
    watching = kube.query_flag(request.query, "watch")
    send_initial = send_initial_events(request.query, watching=watching)
    if watching:
        return await watch(request, kind, docs, send_initial)
    cluster = request.app[CLUSTER]
    version = cluster.resource_version
    paged = page(request.query, docs, version)
    if kube.wants_table(request.headers.get("Accept", "")):
        row = kind.row(cluster.clock)
        include = kube.include_object(request.query.get("includeObject"))
        doc = kube.table(kind.columns, ((d, row(d)) for d in paged.items), version, include)
    else:
        doc = kube.kube_list(f"{kind.kind}List", paged.items, version, kind.api_version)
    doc["metadata"] = paged.metadata(version)
    return _json(doc)


def _one_or_table(
    request: web.Request,
    doc: dict[str, Any],
    row: Callable[[dict[str, Any]], list[Any]],
    columns: tuple[kube.Column, ...],
) -> web.Response:
    cluster = request.app[CLUSTER]
    if kube.wants_table(request.headers.get("Accept", "")):
        include = kube.include_object(request.query.get("includeObject"))
        return _json(kube.table(columns, [(doc, row(doc))], cluster.resource_version, include))
    return _json(doc)


# -- handlers ----------------------------------------------------------------------------------
async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    if not request.app[READY].is_set():
        return web.Response(status=503, text="not ready: restoring state")
    return web.Response(text="ok")


async def version(_request: web.Request) -> web.Response:
    return _json(KUBE_VERSION)


# How deep the root's list goes under each prefix: the discovery documents, not the kinds'
# collections nor the per-group OpenAPI documents (as the apiserver's root lists them).
_ROOT_DEPTH = {"api": 2, "apis": 3, "openapi": 2}


async def root_paths(request: web.Request) -> web.Response:
    """`GET /`: the apiserver's list of the paths it serves (no path with a variable)."""
    paths = set()
    for route in request.app.router.routes():
        path = route.resource.get_info().get("path") if route.resource else None
        if route.method != "GET" or not isinstance(path, str) or path.endswith("/"):
            continue  # the root itself, and discovery's second spelling of each path
        parts = path.strip("/").split("/")
        if len(parts) <= _ROOT_DEPTH.get(parts[0], len(parts)):
            paths.add(path)
    return _json({"paths": sorted(paths)})


async def api_root(request: web.Request) -> web.Response:
    return _json(api_versions(request.host))


async def apis_root(request: web.Request) -> web.Response:
    return _json(api_groups(request.app[CLUSTER].resources))


def _constant(doc: dict[str, Any]) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return _json(doc)

    return handler


async def openapi_v3(_request: web.Request) -> web.Response:
    return _json(openapi.v3_root())


async def openapi_v3_core(_request: web.Request) -> web.Response:
    return web.Response(body=openapi.core_v1_document_bytes(), content_type="application/json")


async def openapi_v2(request: web.Request) -> web.Response:
    if openapiv2.PROTOBUF in request.headers.get("Accept", ""):
        return web.Response(
            body=openapiv2.document_protobuf(),
            headers={"Content-Type": openapiv2.PROTOBUF_ANSWER},
        )
    return web.Response(body=openapiv2.document_json(), content_type="application/json")


async def openapi_json(_request: web.Request) -> web.Response:
    return web.Response(body=openapi.daemon_document_bytes(), content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def debug_catalogue(request: web.Request) -> web.Response:
    return _json({"images": catalogue_rows(request.app[CLUSTER].config.registry.catalogue)})


async def debug_pulls(request: web.Request) -> web.Response:
    return _json(debug.pulls(request.app[CLUSTER], request.query.get("node")))


async def debug_gc(request: web.Request) -> web.Response:
    return _json(debug.gc(request.app[CLUSTER], request.query.get("node")))


async def access_review(request: web.Request) -> web.Response:
    """POST a SelfSubjectAccessReview (`kubectl auth can-i`): see access.py."""
    return _json(access.review(await read_object(request)), 201)


async def rules_review(request: web.Request) -> web.Response:
    """POST a SelfSubjectRulesReview (`kubectl auth can-i --list`): see access.py."""
    return _json(access.rules_review(await read_object(request)), 201)


def _self_review(*, authenticated: bool) -> Handler:
    """POST a SelfSubjectReview (`kubectl auth whoami`): see whoami.py."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await read_object(request)
        return _json(whoami.review(body, authenticated=authenticated), 201)

    return handler


async def node_lease(request: web.Request) -> web.Response:
    """GET a node's Lease (`kubectl describe node`'s `Lease:`): see leases.py."""
    cluster = request.app[CLUSTER]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    lease = leases.node_lease(
        cluster.node_objects, cluster.clock, namespace, name, cluster.feed.version
    )
    return _json(lease)


async def run_gc(request: web.Request) -> web.Response:
    return _json(await debug.run_gc(request.app[CLUSTER], request.query.get("node")))


async def watch(
    request: web.Request,
    kind: Resource,
    initial: list[dict[str, Any]],
    send_initial: bool | None = None,
) -> web.StreamResponse:
    """Newline-delimited watch events of one kind; Table rows when the client asked for a Table.

    Without a resourceVersion (or with "0") the objects listed come first as ADDED, as the API
    server's watch cache sends them; with resourceVersion=N the changes after N are replayed
    from the change feed's window (a version older than it is one ERROR event, 410 Expired);
    then every change once, as it is committed; with allowWatchBookmarks, BOOKMARK events
    between them (see watches.py). With sendInitialEvents (see listoptions.py), the objects
    listed come first whatever the version, then a bookmark marks their end; without it, a
    watch from no version sends none.
    """
    cluster = request.app[CLUSTER]
    as_table = kube.wants_table(request.headers.get("Accept", ""))
    include = kube.include_object(request.query.get("includeObject"))
    namespace = _namespace(request)
    field_req = parse_field_selector(request.query.get("fieldSelector"), kind.fields)
    label_req = parse_label_selector(request.query.get("labelSelector"))
    timeout = _timeout_seconds(request)
    start = _watch_start(request)
    bookmarks = kube.query_flag(request.query, "allowWatchBookmarks")
    hub = request.app[WATCHES]

    def wanted(obj: dict[str, Any]) -> bool:
        if namespace and obj["metadata"].get("namespace") != namespace:
            return False
        labels = obj["metadata"].get("labels") or {}
        return matches(field_req, functools.partial(dotted, obj)) and matches(label_req, labels.get)

    def on_change(change: Change) -> None:
        if wanted(change.object):
            stream.offer(change.type, kind.view(change.object))

    # What comes before the live changes, taken in the same loop turn as the subscription so
    # that no change falls between them: the objects listed, or the changes after `start`.
    expired: ExpiredError | None = None
    replay: list[tuple[str, dict[str, Any]]] = [("ADDED", doc) for doc in initial]
    listed_at = cluster.resource_version
    if send_initial is False and start is None:
        replay = []  # from now on, nothing listed
    elif start is not None and not send_initial:
        try:
            changes = cluster.feed.since(kind.kind, start)
        except ExpiredError as exc:
            expired, changes = exc, []
        replay = [(c.type, kind.view(c.object)) for c in changes if wanted(c.object)]
    # Registered before the headers go out: a watch the client sees is one shutdown will end.
    stream = hub.open(kind.plural, "namespace" if namespace else "cluster", request.transport)
    unsubscribe = cluster.feed.subscribe(kind.kind, on_change) if expired is None else _nothing
    row = kind.row(cluster.clock)

    async def send(change: str, obj: dict[str, Any]) -> None:
        if as_table:
            version = int(obj["metadata"].get("resourceVersion") or cluster.resource_version)
            payload = kube.table(kind.columns, [(obj, row(obj))], version, include)
            line = json.dumps({"type": change, "object": payload}, allow_nan=False).encode()
            await response.write(line + b"\n")
        else:
            await response.write(_watch_line(change, obj))

    async def send_bookmark(*, initial_end: bool = False) -> None:
        # An empty object of the kind at the current version, as the cacher's bookmark is.
        version = listed_at if initial_end else cluster.resource_version
        meta: dict[str, Any] = {"resourceVersion": str(version), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        if as_table:
            obj: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1"}
            obj.update(metadata=meta, columnDefinitions=None, rows=None)
        else:
            obj = {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta}
        await response.write(json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n")

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    try:
        await response.prepare(request)
        if expired is not None:
            # As the apiserver's cacher: the watch is established, then one ERROR event.
            status = ApiError(410, "Expired", str(expired)).status()
            await response.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
            return response
        for change, doc in replay:
            if stream.ended:
                return response
            await send(change, doc)
        if send_initial:
            await send_bookmark(initial_end=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        due = next_bookmark(loop.time(), hub.bookmark_interval, deadline) if bookmarks else None
        async with asyncio.timeout_at(deadline):
            while True:
                if due is None:
                    change, obj = await stream.queue.get()
                else:
                    try:
                        async with asyncio.timeout_at(due):
                            change, obj = await stream.queue.get()
                    except TimeoutError:
                        if not stream.queue.empty():
                            continue  # a change came as the timer fired: it goes first
                        # Nothing queued: every change up to the current version was sent.
                        await send_bookmark()
                        due = next_bookmark(loop.time(), hub.bookmark_interval, deadline)
                        continue
                if change == STOP:
                    break
                await send(change, obj)
    except (TimeoutError, ConnectionError):
        pass
    finally:
        unsubscribe()
        hub.finish(stream)
    return response


def _nothing() -> None:
    pass


def _watch_start(request: web.Request) -> int | None:
    """The resourceVersion a watch resumes after; None to start from the objects as listed."""
    given = request.query.get("resourceVersion")
    if given in (None, "", "0"):
        return None
    if not given.isascii() or not given.isdigit():
        # The apiserver's versioner parses it as Go's strconv.ParseUint does.
        quoted = json.dumps(given)
        raise bad_request(
            f"resourceVersion: Invalid value: {quoted}: strconv.ParseUint: parsing {quoted}: "
            "invalid syntax"
        )
    return int(given)


# One change goes to every watch as the same object (renders are shared): encode it once.
# Keyed by identity, holding the object so its id cannot be reused while cached.
_LINES: dict[tuple[str, int], tuple[dict[str, Any], bytes]] = {}
_LINES_KEPT = 256


def _watch_line(change: str, obj: dict[str, Any]) -> bytes:
    key = (change, id(obj))
    cached = _LINES.get(key)
    if cached is None or cached[0] is not obj:
        line = json.dumps({"type": change, "object": obj}, allow_nan=False).encode() + b"\n"
        cached = _LINES[key] = (obj, line)
        while len(_LINES) > _LINES_KEPT:
            del _LINES[next(iter(_LINES))]
    return cached[1]


async def stop_watches(app: web.Application) -> None:
    """on_shutdown: end every open watch now; aiohttp would otherwise wait for each to end."""
    await app[WATCHES].close(grace=WATCH_GRACE_SECONDS)


# -- the routes of every kind, generated from the resource table ---------------------------------
def _store(request: web.Request, res: Resource) -> Storage:
    return request.app[CLUSTER].stores[res.kind]


def _key(request: web.Request) -> tuple[str, str]:
    return request.match_info.get("namespace", ""), request.match_info["name"]


def _resource_handlers(res: Resource) -> dict[str, Handler]:
    """One handler per verb of `res`: each reads the request, calls the kind's storage and
    answers as the apiserver does (the client's view of the object, a Table, a watch)."""

    async def list_(request: web.Request) -> web.StreamResponse:
        docs = _store(request, res).list(_namespace(request))
        return await _listing(request, res, [res.view(d) for d in docs])

    async def get(request: web.Request) -> web.StreamResponse:
        doc = res.view(_store(request, res).get(*_key(request)))
        return _one_or_table(request, doc, res.row(request.app[CLUSTER].clock), res.columns)

    async def create(request: web.Request) -> web.StreamResponse:
        dry = dry_run(request)
        namespace = request.match_info.get("namespace", "")
        body = await read_object(request)
        if res.namespaced:
            meta = body.get("metadata") if isinstance(body, Mapping) else None
            name = meta.get("name") if isinstance(meta, Mapping) else None
            request.app[CLUSTER].namespaces.admit_create(
                res.plural, namespace, name if isinstance(name, str) else ""
            )
        return _json(res.view(_store(request, res).create(namespace, body, dry_run=dry)), 201)

    async def patch(request: web.Request) -> web.StreamResponse:
        check_patch(request)
        store = _store(request, res)
        namespace, name = _key(request)
        dry = dry_run(request)
        applying = request.content_type == APPLY_PATCH_YAML
        try:
            current = store.get(namespace, name)
        except ApiError as exc:
            # Server-side apply of an object that does not exist creates it, through the same
            # admission and validation as a POST (the apiserver's patcher does the same).
            if exc.code != 404 or not applying or "create" not in res.verbs:
                raise
            body = await read_object(request)
            if res.namespaced:
                request.app[CLUSTER].namespaces.admit_create(res.plural, namespace, name)
            created = store.create(namespace, applied_object(body, name), dry_run=dry)
            return _json(res.view(created), 201)
        patch = await read_patch(request, current)
        by_name = request.content_type in (
            "application/strategic-merge-patch+json",
            APPLY_PATCH_YAML,
        )
        merge = SpecMerge.BY_NAME if by_name else SpecMerge.JSON
        return _json(res.view(store.patch(namespace, name, patch, dry_run=dry, merge=merge)))

    async def update(request: web.Request) -> web.StreamResponse:
        namespace, name = _key(request)
        dry = dry_run(request)
        body = await read_object(request)
        return _json(res.view(_store(request, res).replace(namespace, name, body, dry_run=dry)))

    async def delete(request: web.Request) -> web.StreamResponse:
        dry = await delete_dry_run(request)
        options = await delete_options(request)
        doc = await _store(request, res).delete(*_key(request), dry_run=dry, options=options)
        if res.delete_answers_status:
            meta = doc["metadata"]
            return _json(kube.success_status(res.plural, meta["name"], meta["uid"]))
        return _json(res.view(doc))

    async def delete_collection(request: web.Request) -> web.StreamResponse:
        """DELETE on the collection: each object the selectors pick, deleted as one DELETE
        would (pods gracefully); the answer is the list of what was deleted, as the
        apiserver's DeleteCollection returns it."""
        dry = await delete_dry_run(request)
        options = await delete_options(request)
        store = _store(request, res)
        namespace = request.match_info.get("namespace", "")
        chosen = _filter(request, store.list(namespace), res.fields)
        deleted = []
        for doc in chosen:
            try:
                gone = await store.delete(
                    namespace, doc["metadata"]["name"], dry_run=dry, options=options
                )
            except ApiError as exc:
                if exc.code != 404:  # gone meanwhile is what was wanted
                    raise
                continue
            deleted.append(res.view(gone))
        cluster = request.app[CLUSTER]
        return _json(
            kube.kube_list(f"{res.kind}List", deleted, cluster.resource_version, res.api_version)
        )

    async def evict(request: web.Request) -> web.StreamResponse:
        """POST `pods/{name}/eviction` (`kubectl drain`): with no PodDisruptionBudget in the
        simulation every eviction is allowed, so the pod is deleted as its Eviction's
        deleteOptions say (gracefully by default); 201 with a Success Status."""
        namespace, name = _key(request)
        body = await read_object(request)
        meta = body.get("metadata") or {}
        if not isinstance(meta, Mapping) or meta.get("name") != name:
            raise bad_request("name in URL does not match name in Eviction object")
        given = body.get("deleteOptions") or {}
        if not isinstance(given, Mapping):
            raise bad_request("deleteOptions must be an object")
        dry = dry_run(request)
        if given.get("dryRun") is not None:
            values = given["dryRun"]
            if not isinstance(values, list):
                raise bad_request("DeleteOptions.dryRun must be a list of strings")
            dry = check_dry_run(values, "DELETE") or dry
        options = parse_delete_options(given)
        await _store(request, res).delete(namespace, name, dry_run=dry, options=options)
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        return _json({**status, "code": 201}, 201)

    return {
        "evict": evict,
        "list": list_,
        "get": get,
        "create": create,
        "patch": patch,
        "update": update,
        "delete": delete,
        "deletecollection": delete_collection,
    }


def add_resource_routes(app: web.Application, resources: tuple[Resource, ...]) -> None:
    """Every kind's routes, for the verbs it declares (watch is `list` with watch=true)."""
    for res in resources:
        handlers = _resource_handlers(res)
        verbs = set(res.verbs)
        collection = res.collection_path()
        item = f"{collection}/{{name}}"
        if "list" in verbs:
            if res.namespaced:  # the same list across all namespaces
                app.router.add_get(f"{res.api_prefix}/{res.plural}", handlers["list"])
            app.router.add_get(collection, handlers["list"])
        if "create" in verbs:
            app.router.add_post(collection, handlers["create"])
        if "deletecollection" in verbs:
            app.router.add_delete(collection, handlers["deletecollection"])
        if "get" in verbs:
            app.router.add_get(item, handlers["get"])
            for sub in res.subresources:
                if sub == "eviction":
                    app.router.add_post(f"{item}/eviction", handlers["evict"])
                elif sub != "scale":  # a Scale, not the object: the kind's own handlers
                    app.router.add_get(f"{item}/{sub}", handlers["get"])
        if "delete" in verbs:
            app.router.add_delete(item, handlers["delete"])
        if "patch" in verbs:
            app.router.add_patch(item, handlers["patch"])
        if "update" in verbs:
            app.router.add_put(item, handlers["update"])


def add_pod_status_routes(app: web.Application, pods: PodStore) -> None:
    """PATCH and PUT on `pods/{name}/status` (`kubectl patch --subresource=status`, a client's
    `patch_namespaced_pod_status`): the written status stands until the pod's kubelet
    reconciles it (see podstatus)."""

    async def patch_status(request: web.Request) -> web.StreamResponse:
        check_patch(request)
        namespace, name = _key(request)
        dry = dry_run(request)
        current = pods.get(namespace, name)
        body = await read_patch(request, current)
        by_key = request.content_type in (
            "application/strategic-merge-patch+json",
            APPLY_PATCH_YAML,
        )
        written = patched_pod(current, body, SpecMerge.BY_NAME if by_key else SpecMerge.JSON)
        # A JSON patch's result is not pruned by the field validation: unknown fields go here.
        written = prune(written, openapi.schemas()[openapi.kind_schema_name("Pod")], smp=False)
        return _json(pods.write_status(namespace, name, written, dry_run=dry))

    async def replace_status(request: web.Request) -> web.StreamResponse:
        namespace, name = _key(request)
        dry = dry_run(request)
        body = check_kind(await read_object(request), "Pod")
        return _json(pods.write_status(namespace, name, body, dry_run=dry, replacing=True))

    item = "/api/v1/namespaces/{namespace}/pods/{name}/status"
    app.router.add_patch(item, patch_status)
    app.router.add_put(item, replace_status)


def add_workload_routes(app: web.Application, cluster: Cluster) -> None:
    """What apps/v1 has beyond the generated routes: `/scale` (an autoscaling/v1 Scale, what
    `kubectl scale` patches), PUT `/status`, and its OpenAPI document."""

    def storage(request: web.Request) -> WorkloadStorage:
        return request.app[CLUSTER].workloads[KIND_BY_PLURAL[request.match_info["plural"]]]

    async def get_scale(request: web.Request) -> web.StreamResponse:
        return _json(storage(request).scale(*_key(request)))

    async def patch_scale(request: web.Request) -> web.StreamResponse:
        check_patch(request)
        store = storage(request)
        namespace, name = _key(request)
        dry = dry_run(request)
        body = await read_patch(request, store.scale(namespace, name))
        body = body.get("__replace__", body)
        return _json(store.set_scale(namespace, name, body, dry_run=dry))

    async def replace_scale(request: web.Request) -> web.StreamResponse:
        dry = dry_run(request)
        body = await read_object(request)
        return _json(storage(request).set_scale(*_key(request), body, dry_run=dry))

    async def replace_status(request: web.Request) -> web.StreamResponse:
        dry = dry_run(request)
        body = await read_object(request)
        namespace, name = _key(request)
        return _json(
            storage(request).replace_status(namespace, name, body.get("status") or {}, dry_run=dry)
        )

    async def openapi_apps(_request: web.Request) -> web.Response:
        return web.Response(body=openapi.apps_v1_document_bytes(), content_type="application/json")

    if not cluster.workloads:
        return
    app.router.add_get("/openapi/v3/apis/apps/v1", openapi_apps)
    item = "/apis/apps/v1/namespaces/{namespace}/{plural:deployments|replicasets}/{name}"
    app.router.add_get(f"{item}/scale", get_scale)
    app.router.add_patch(f"{item}/scale", patch_scale)
    app.router.add_put(f"{item}/scale", replace_scale)
    app.router.add_put(f"{item}/status", replace_status)


def _add_discovery(app: web.Application, path: str, handler: Handler) -> None:
    """A discovery document at its path and with a trailing slash, as the apiserver serves it:
    the Python client asks `/version/`, `/api/`, `/apis/`, `/apis/apps/v1/` and the like."""
    app.router.add_get(path, handler)
    app.router.add_get(f"{path}/", handler)


def make_app(
    cluster: Cluster,
    metrics_: Metrics,
    *,
    token: str | None = None,
    max_body_bytes: int = 3 * 2**20,
    body_timeout: float = 60.0,
    request_seen: Callable[[web.Request], None] = lambda _request: None,
) -> web.Application:
    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=[
            edge_middleware(max_body_bytes, request_seen),
            error_middleware(),
            auth_middleware(token),
            field_validation_middleware(),
        ],
    )
    app[BODY_TIMEOUT] = body_timeout
    app[CLUSTER] = cluster
    app[METRICS] = metrics_
    app[READY] = asyncio.Event()
    app[WATCHES] = WatchHub()
    metrics_.registry.register(WatchCollector(app[WATCHES]))
    app.on_shutdown.append(stop_watches)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", healthz)
    app.router.add_get("/readyz", readyz)
    _add_discovery(app, "/version", version)
    _add_discovery(app, "/api", api_root)
    _add_discovery(app, "/apis", apis_root)
    app.router.add_get("/openapi/v2", openapi_v2)
    app.router.add_get("/openapi/v3", openapi_v3)
    app.router.add_get("/openapi/v3/api/v1", openapi_v3_core)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/debug/pulls", debug_pulls)
    app.router.add_get("/debug/catalogue", debug_catalogue)
    app.router.add_get("/debug/gc", debug_gc)
    app.router.add_post("/debug/gc", run_gc)
    app.router.add_post(access.PATH, access_review)
    app.router.add_post(access.RULES_PATH, rules_review)
    app.router.add_post(whoami.PATH, _self_review(authenticated=token is not None))
    app.router.add_get(leases.PATH, node_lease)
    # Discovery and routes of the cluster's resource table.
    app.router.add_get("/", root_paths)
    for path, group in group_documents(cluster.resources).items():
        _add_discovery(app, path, _constant(group))
    for path, resource_list in resource_lists(cluster.resources).items():
        _add_discovery(app, path, _constant(resource_list))
    add_resource_routes(app, cluster.resources)
    add_workload_routes(app, cluster)
    if any(res.kind == "Pod" for res in cluster.resources):
        add_pod_tool_routes(app, cluster.pods, cluster.feed, app[WATCHES])
        add_pod_status_routes(app, cluster.pods)
    return app
