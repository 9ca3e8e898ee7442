"""The one error tree of kubesim-images.

Grouped by what the caller should do. Pull outcomes carry the kubelet's reason strings
(`ErrImagePull`, `ImagePullBackOff`, ...) because those are what a container's waiting state and
a user's `kubectl describe` show. Third-party errors (aiohttp, OS) are mapped to these at the
registry boundary and never leak upward.
"""

from __future__ import annotations

from typing import ClassVar


class KubesimError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidReferenceError(KubesimError, ValueError):
    """An image reference that does not follow the distribution/reference grammar.

    The message is distribution's own, e.g. ``invalid reference format: repository name must be
    lowercase``.
    """


class InvalidValueError(KubesimError, ValueError):
    """A duration, size, bandwidth or other scalar that cannot be parsed."""


class ConfigError(KubesimError):
    """A configuration (KubeletConfiguration, daemon config, scenario file) that is refused.

    ``path`` names the field (``spec.kubelet.maxParallelImagePulls``) when one is to blame.
    """

    def __init__(self, message: str, *, path: str = "", source: str = "") -> None:
        self.message = message
        self.path = path
        self.source = source
        where = ": ".join(part for part in (source, path) if part)
        super().__init__(f"{where}: {message}" if where else message)


class ContainerError(KubesimError):
    """Why a container's image is not ready; ``reason`` is the kubelet's waiting reason."""

    reason: ClassVar[str] = "ErrImagePull"


class ErrImagePull(ContainerError):
    """The pull was attempted and failed."""

    reason = "ErrImagePull"


class RegistryUnavailable(ContainerError):
    """The pull failed because the registry could not be reached."""

    reason = "RegistryUnavailable"


class ImagePullBackOff(ContainerError):
    """The image is in back-off: the kubelet did not try to pull this time."""

    reason = "ImagePullBackOff"


class ErrImageNeverPull(ContainerError):
    """Pull policy Never and the image is not on the node."""

    reason = "ErrImageNeverPull"


class InvalidImageName(ContainerError):
    """The image string does not parse as a reference."""

    reason = "InvalidImageName"


class ImageInspectError(ContainerError):
    """The node's image store could not be asked whether the image is present."""

    reason = "ImageInspectError"


class RegistryError(KubesimError):
    """A registry answered a pull with an error; ``code`` is the OCI error code or kind.

    Codes follow the distribution spec (``TOOMANYREQUESTS``, ``UNAUTHORIZED``,
    ``MANIFEST_UNKNOWN``) or name a transport failure (``timeout``, ``connection reset``).
    ``unavailable`` marks errors the kubelet reports as ``RegistryUnavailable``.
    """

    def __init__(self, message: str, *, code: str = "", unavailable: bool = False) -> None:
        self.code = code
        self.unavailable = unavailable
        super().__init__(message)


class ImageRemoveError(KubesimError):
    """The runtime refused to remove an image; image GC goes on with the next one."""


class ImageFsStatsError(KubesimError):
    """The image filesystem could not be measured; that GC run ends with this error."""


class PullQPSExceededError(KubesimError):
    """`registryPullQPS` found no token when the pull was about to start."""

    def __init__(self) -> None:
        super().__init__("pull QPS exceeded")
