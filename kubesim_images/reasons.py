"""The kubelet's event reasons and message texts, word for word.

Users grep their clusters' events for these strings, so each formatter reproduces the kubelet's
format (pkg/kubelet/images/image_manager.go, pkg/kubelet/events) including Go's `%q` quoting and
`time.Duration` rendering.
"""

from __future__ import annotations

import enum
import functools


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Reason(enum.StrEnum):
    PULLING = "Pulling"
    PULLED = "Pulled"
    FAILED = "Failed"
    BACK_OFF = "BackOff"
    ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
    INSPECT_FAILED = "InspectFailed"
    KILLING = "Killing"  # a container stopped: its pod deleted, or its spec (image) changed
    # What the daemon records beyond the image manager (never in scenario outputs): the
    # scheduler's binding, the kubelet's container starts and missing pull secrets.
    SCHEDULED = "Scheduled"
    CREATED = "Created"
    STARTED = "Started"
    FAILED_TO_RETRIEVE_IMAGE_PULL_SECRET = "FailedToRetrieveImagePullSecret"  # noqa: S105
    # Node events of image GC (pkg/kubelet/events).
    FREE_DISK_SPACE_FAILED = "FreeDiskSpaceFailed"
    IMAGE_GC_FAILED = "ImageGCFailed"
    INVALID_DISK_CAPACITY = "InvalidDiskCapacity"
    # The scheduler's, for a pod no node can take (several nodes: placement.py).
    FAILED_SCHEDULING = "FailedScheduling"


_GO_ESCAPES = {
    "\a": r"\a",
    "\b": r"\b",
    "\f": r"\f",
    "\n": r"\n",
    "\r": r"\r",
    "\t": r"\t",
    "\v": r"\v",
    "\\": "\\\\",
    '"': '\\"',
}


@functools.lru_cache(maxsize=4096)
def go_quote(text: str) -> str:
    """Go's `%q` for a string: double quotes, Go escapes for non-printable characters.
    Memoised: every event of a pull quotes the same few image strings."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # the common case, on the hot path of every event
    out = ['"']
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def truncate_ms_ns(ns: int) -> int:
    """`Duration.Truncate(time.Millisecond)` (towards zero, as Go for a non-negative duration)."""
    return ns - ns % 1_000_000


def truncate_ms(seconds: float) -> float:
    """The same for a duration held in seconds (a metric's observation)."""
    return truncate_ms_ns(round(seconds * 1e9)) / 1e9


def pulling(image: str) -> str:
    return f"Pulling image {go_quote(image)}"


def pulled(image: str, pull_ns: int, total_ns: int, size: int) -> str:
    """The kubelet's `Pulled` text: both durations truncated to the millisecond (1.32's
    `imagePullResult.pullDuration.Truncate(time.Millisecond)` and
    `time.Since(startTime).Truncate(time.Millisecond)`) and printed as `time.Duration`."""
    return pulled_after(pulled_prefix(image), pull_ns, total_ns, size)


def pulled_prefix(image: str) -> str:
    """The start of an image's `Pulled` texts, the same for every pull of it (to keep)."""
    return f"Successfully pulled image {go_quote(image)} in "


def pulled_after(prefix: str, pull_ns: int, total_ns: int, size: int) -> str:
    """`pulled` from its image's `pulled_prefix`: on the hot path of every pull."""
    texts = _MS_TEXTS
    pull_ms = pull_ns // 1_000_000
    pull = texts.get(pull_ms) or _ms_text(pull_ms)
    total_ms = total_ns // 1_000_000
    total = texts.get(total_ms) or _ms_text(total_ms)
    return f"{prefix}{pull} ({total} including waiting). Image size: {size} bytes."


# ".234", ".23", ".2" or "" for 0..999 ms: how Go prints a whole number of milliseconds after
# the seconds.
_MS_FRACTIONS = tuple("." + f"{ms:03d}".rstrip("0") if ms else "" for ms in range(1000))

# Whole milliseconds -> Go's text: the nodes of a rollout pull in step, so most durations
# recur. Bounded: emptied when full.
_MS_TEXTS: dict[int, str] = {}
_MS_TEXTS_MAX = 1 << 16


def _ms_text(ms: int) -> str:
    """`format_duration_ns` of a whole number of milliseconds: Go prints `12ms` below a
    second, else `[<h>h][<m>m]<s>[.<ms>]s`; remembered in `_MS_TEXTS`."""
    if ms < 1000:
        text = f"{ms}ms" if ms > 0 else "0s"
    else:
        whole, frac = divmod(ms, 1000)
        if whole < 60:
            text = f"{whole}{_MS_FRACTIONS[frac]}s"
        else:
            minutes, sec = divmod(whole, 60)
            rest = f"{sec}{_MS_FRACTIONS[frac]}s"
            hours, minutes = divmod(minutes, 60)
            text = f"{hours}h{minutes}m{rest}" if hours else f"{minutes}m{rest}"
    if len(_MS_TEXTS) >= _MS_TEXTS_MAX:
        _MS_TEXTS.clear()
    _MS_TEXTS[ms] = text
    return text


def already_present(image: str) -> str:
    return f"Container image {go_quote(image)} already present on machine"


# What the CRI's PullImage answers when the kubelet cancels the pull's context (the pod worker
# of a deleted pod): gRPC's status for a cancelled call.
CONTEXT_CANCELED = "rpc error: code = Canceled desc = context canceled"


def stopping_container(name: str) -> str:
    """kuberuntime's killContainer: the Normal `Killing` event of a container being stopped."""
    return f"Stopping container {name}"


def failed_to_pull(image: str, error: str) -> str:
    return f"Failed to pull image {go_quote(image)}: {error}"


def container_error(reason: str) -> str:
    """The Warning `Failed` event of `startContainer` when EnsureImageExists fails."""
    return f"Error: {reason}"


def back_off(image: str) -> str:
    return f"Back-off pulling image {go_quote(image)}"


def never_pull(image: str) -> str:
    return f"Container image {go_quote(image)} is not present with pull policy of Never"


def inspect_failed(image: str, error: str) -> str:
    return (
        f"Failed to apply default image tag {go_quote(image)}: couldn't parse image name "
        f"{go_quote(image)}: {error}"
    )


def registry_unavailable(image: str, detail: str) -> str:
    """`evalCRIPullErr` for RegistryUnavailable: the reason's name is folded into the message."""
    suffix = f": {detail}" if detail else ""
    return f"image pull failed for {image} because the registry is unavailable{suffix}"
