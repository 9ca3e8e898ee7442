"""The small interface every registry backend implements, and the values crossing it.

A backend resolves a reference, fetches what the node lacks, and returns the image record for
the node's store. It never touches the store itself; the puller does, so backends stay
swappable (the simulated registry in tests and scenarios, the OCI client for real pulls).
Backends raise only `RegistryError`: transport and protocol errors are mapped at this boundary.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from kubesim_images.keyring import Credential
from kubesim_images.reference import ImageReference
from kubesim_images.store import ImageRecord, ImageStore


@dataclass(frozen=True, slots=True)
class PullRequest:
    pull_id: int
    node: str
    ref: ImageReference
    store: ImageStore
    credential: Credential | None = None


class RegistryBackend(Protocol):
    async def pull(self, request: PullRequest) -> ImageRecord:
        """Resolve and download; raise `RegistryError` on failure."""
        ...

    def progress(self, pull_id: int) -> tuple[float, int] | None:
        """(bytes done, bytes to download) of a pull in flight, None when unknown."""
        ...


@runtime_checkable
class RoundTripBackend(RegistryBackend, Protocol):
    """A backend whose pull can be started from a callback: the pull queue starts it the moment
    it hands a waiting pull its slot, so a queued pull suspends once (on `future`), not twice."""

    def begin(self, request: PullRequest, future: asyncio.Future[Any]) -> None:
        """Start the pull; its outcome settles `future` (only `finish` reads it)."""
        ...

    async def finish(self, request: PullRequest, future: asyncio.Future[Any]) -> ImageRecord:
        """The pull `begin` started, to its record; raise `RegistryError` on failure."""
        ...
