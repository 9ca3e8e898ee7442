"""The simulated registry's catalogue: images, their layers and digests.

Digests a user does not give are derived (sha256 of the image name and layer index for layers,
of the name, tag and layer digests for manifests and configs), so a catalogue is stable across
runs and two images share a layer exactly when the file gives them the same layer digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from kubesim_images.reference import ImageReference
from kubesim_images.store import Layer


def derived_digest(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SimImage:
    ref: ImageReference  # normalized; tag and/or digest as the catalogue names it
    layers: tuple[Layer, ...]
    manifest_digest: str
    config_digest: str
    auth: tuple[str, str] | None = None  # (username, password) a pull must present

    def __repr__(self) -> str:
        return f"SimImage({self.ref}, {len(self.layers)} layers, private={self.auth is not None})"

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def repo_digest(self) -> str:
        return f"{self.ref.name}@{self.manifest_digest}"


def make_image(ref: ImageReference, layers: Iterable[tuple[int, str | None]]) -> SimImage:
    """An image from (size, digest-or-None) pairs; missing digests are derived."""
    built = tuple(
        Layer(
            digest=digest or derived_digest(ref.name, ref.tag or "", "layer", str(index)), size=size
        )
        for index, (size, digest) in enumerate(layers)
    )
    seed = [ref.name, ref.tag or "", *(layer.digest for layer in built)]
    manifest = ref.digest or derived_digest("manifest", *seed)
    return SimImage(
        ref=ref,
        layers=built,
        manifest_digest=manifest,
        config_digest=derived_digest("config", *seed),
    )


class Catalogue:
    def __init__(self, images: Iterable[SimImage] = ()) -> None:
        self._by_key: dict[str, SimImage] = {}
        self._images: list[SimImage] = []
        for image in images:
            self.add(image)

    def add(self, image: SimImage) -> None:
        self._images.append(image)
        self._by_key[f"{image.ref.name}@{image.manifest_digest}"] = image
        if image.ref.tag or not image.ref.digest:
            self._by_key[f"{image.ref.name}:{image.ref.tag or 'latest'}"] = image

    def resolve(self, ref: ImageReference) -> SimImage | None:
        """The image a reference names: by digest when it has one (digest wins), else tag."""
        key = ref.pull_ref  # name@digest, or name:tag with latest by default
        return self._by_key.get(key)

    def images(self) -> list[SimImage]:
        return list(self._images)

    def __len__(self) -> int:
        return len(self._images)
