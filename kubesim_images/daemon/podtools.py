"""A pod's subresources that reach its kubelet on a real cluster: logs, exec, attach and
port-forward (eviction, which stays in the apiserver, is one of the generated routes).

The simulation runs no processes, so a log is empty; but the kubelet's refusals are what a user
of an image simulator reads, so they are the kubelet's texts (`validateContainerLogStatus`):
`kubectl logs` on a pod stuck on its image says `is waiting to start: trying and failing to pull
image`, a 400 the apiserver passes on. exec, attach and port-forward are 400 with a message
saying why, never a generic 404.

`follow=true` on a running container holds the stream open, as the kubelet follows a log until
the container exits: it ends when the container stops running (its pod deleted, its image
changed), when the client goes, or when the daemon stops. The stream is registered with the
watch hub, which ends it on shutdown and notices a client gone, so it never holds a drain; it
waits on the pod's changes from the change feed, never on a timer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from kubesim_images.daemon.changefeed import DELETED, Change, ChangeFeed
from kubesim_images.daemon.gotyped import time_error
from kubesim_images.daemon.kube import ApiError, bad_request, invalid, query_flag, query_int
from kubesim_images.daemon.pods import PodStore
from kubesim_images.daemon.watches import STOP, WatchHub
from kubesim_images.pod import FieldError
from kubesim_images.reasons import go_quote

ITEM = "/api/v1/namespaces/{namespace}/pods/{name}"
# The kubelet's texts for the waiting reasons it explains (images.ErrImagePull and
# images.ErrImagePullBackOff); any other reason is printed as it is.
_WAITING_TEXTS = {
    "ErrImagePull": "image can't be pulled",
    "ImagePullBackOff": "trying and failing to pull image",
}


def _containers(spec: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        names.extend(str(c.get("name")) for c in spec.get(key) or ())
    return names


def pick_container(pod: Mapping[str, Any], given: str | None) -> str:
    """The container a request is about, checked as the apiserver's `validateContainer` does."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    if not given:
        containers = spec.get("containers") or []
        if len(containers) == 1:
            return str(containers[0]["name"])
        if not containers:
            raise bad_request(f"a container name must be specified for pod {name}")
        choices = " ".join(_containers(spec))  # a Go []string printed with %v
        raise bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{choices}]"
        )
    if given not in _containers(spec):
        raise bad_request(f"container {given} is not valid for pod {name}")
    return given


def _status_of(pod: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or ():
            if cs.get("name") == container:
                return dict(cs)
    return None


def check_log_status(pod: Mapping[str, Any], container: str, *, previous: bool) -> None:
    """The kubelet's `validateContainerLogStatus`: a container that has logs passes; any other
    is refused with the kubelet's text (a 400 through the apiserver)."""
    name = pod["metadata"]["name"]
    where = f"container {go_quote(container)} in pod {go_quote(name)}"
    cs = _status_of(pod, container)
    if cs is None:
        raise bad_request(f"{where} is not available")
    state = cs.get("state") or {}
    last = (cs.get("lastState") or {}).get("terminated")
    if previous:
        if not last or not last.get("containerID"):
            raise bad_request(
                f"previous terminated container {go_quote(container)} in pod "
                f"{go_quote(name)} not found"
            )
        return
    if "running" in state:
        return
    if "terminated" in state:
        if state["terminated"].get("containerID") or (last and last.get("containerID")):
            return
        raise bad_request(f"{where} is terminated")
    if last is not None:
        if last.get("containerID"):
            return
        raise bad_request(f"{where} is terminated")
    if "waiting" in state:
        reason = str(state["waiting"].get("reason") or "")
        raise bad_request(f"{where} is waiting to start: {_WAITING_TEXTS.get(reason, reason)}")
    raise bad_request(f"{where} is waiting to start - no logs yet")


def check_log_options(name: str, query: Mapping[str, str]) -> None:
    """PodLogOptions as the apiserver decodes (400) and validates them
    (`ValidatePodLogOptions`, 422)."""
    tail = query_int(query, "tailLines")
    limit = query_int(query, "limitBytes")
    since = query_int(query, "sinceSeconds")
    since_time = query.get("sinceTime")
    if since_time is not None and (error := time_error(since_time)) is not None:
        raise bad_request(error)
    causes: list[FieldError] = []
    if tail is not None and tail < 0:
        causes.append(_invalid_option("tailLines", tail, "must be greater than or equal to 0"))
    if limit is not None and limit < 1:
        causes.append(_invalid_option("limitBytes", limit, "must be greater than 0"))
    if since is not None and query.get("sinceTime") is not None:
        causes.append(
            FieldError(
                "",
                "FieldValueForbidden",
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            )
        )
    elif since is not None and since < 1:
        causes.append(_invalid_option("sinceSeconds", since, "must be greater than 0"))
    if causes:
        raise invalid("PodLogOptions", name, causes)


def _invalid_option(field: str, value: int, message: str) -> FieldError:
    return FieldError(field, "FieldValueInvalid", f"Invalid value: {value}: {message}")


def still_running(pod: Mapping[str, Any], container: str, container_id: str) -> bool:
    """Whether the container a followed log is about still runs (the same one, not restarted)."""
    cs = _status_of(pod, container)
    if cs is None or "running" not in (cs.get("state") or {}):
        return False
    return cs.get("containerID") == container_id


def add_pod_tool_routes(
    app: web.Application, pods: PodStore, feed: ChangeFeed, hub: WatchHub
) -> None:
    """The routes of `POD_ACTIONS` (resources.py) over the cluster's pods."""

    def pod_of(request: web.Request) -> dict[str, Any]:
        return pods.get(request.match_info["namespace"], request.match_info["name"])

    async def log(request: web.Request) -> web.StreamResponse:
        pod = pod_of(request)
        container = pick_container(pod, request.query.get("container"))
        check_log_options(pod["metadata"]["name"], request.query)
        previous = query_flag(request.query, "previous")
        follow = query_flag(request.query, "follow")
        if not (pod.get("spec") or {}).get("nodeName"):
            # Unscheduled: the apiserver has no kubelet to ask and streams nothing.
            return web.Response(body=b"", content_type="text/plain")
        check_log_status(pod, container, previous=previous)
        cs = _status_of(pod, container) or {}
        container_id = str(cs.get("containerID") or "")
        if not follow or previous or not still_running(pod, container, container_id):
            # A simulated container writes nothing: its log is empty, and ends.
            return web.Response(body=b"", content_type="text/plain")
        return await _follow(request, pod, container, container_id)

    async def _follow(
        request: web.Request, pod: dict[str, Any], container: str, container_id: str
    ) -> web.StreamResponse:
        """Hold the (empty) log open until its container stops running (see the module)."""
        uid = pod["metadata"]["uid"]
        stream = hub.open("pods", "namespace", request.transport, subresource="log")

        def on_change(change: Change) -> None:
            if change.object["metadata"].get("uid") != uid:
                return
            if change.type == DELETED or not still_running(change.object, container, container_id):
                stream.end()

        unsubscribe = feed.subscribe("Pod", on_change)
        try:
            # Checked again once subscribed: no change falls between the check and the feed.
            current = pods.get(pod["metadata"]["namespace"], pod["metadata"]["name"])
            if current["metadata"]["uid"] != uid or not still_running(
                current, container, container_id
            ):
                stream.end()
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            while True:
                change, _ = await stream.queue.get()
                if change == STOP:
                    break
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away: nothing to end but the stream
        except ApiError:  # the pod went between the first look and the subscription
            return web.Response(body=b"", content_type="text/plain")
        finally:
            unsubscribe()
            hub.finish(stream)
        return response

    def no_processes(verb: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            pod = pod_of(request)
            if verb == "port-forward":
                target = f"pod {pod['metadata']['name']}"
            else:
                container = pick_container(pod, _first(request.query.getall("container", [])))
                target = f"container {container} of pod {pod['metadata']['name']}"
            raise bad_request(
                f"cannot {verb} {target}: kubesim-images simulates the kubelet's image manager "
                "and runs no processes"
            )

        return handler

    app.router.add_get(f"{ITEM}/log", log)
    for action, verb in (("exec", "exec into"), ("attach", "attach to"), ("portforward", "")):
        handler = no_processes(verb or "port-forward")
        app.router.add_get(f"{ITEM}/{action}", handler)
        app.router.add_post(f"{ITEM}/{action}", handler)


def _first(values: Sequence[str]) -> str | None:
    return values[0] if values else None
