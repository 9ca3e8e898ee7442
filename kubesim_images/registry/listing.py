"""What a simulated registry holds, as people list it: one row per image, never a password.

`kubesim-images catalogue` and the daemon's `/debug/catalogue` print the same listing, so the
answer to "why is `redis` not found?" (the catalogue has `redis:7.4`, not `latest`) is one
command away. A layer counts as shared when another image of the catalogue has the same digest:
that is what a node does not download twice. Tags of one image (`nginx:latest` and `nginx:1.27`)
are rows of their own with the same digest.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TypedDict

from kubesim_images.reference import familiar_string
from kubesim_images.registry.catalogue import Catalogue
from kubesim_images.units import format_size


class CatalogueRow(TypedDict):
    name: str  # familiar repository: nginx, registry.example.com/team/app
    repository: str  # fully qualified: docker.io/library/nginx
    tag: str | None
    reference: str  # what a pod may write to get exactly this image
    digest: str  # the manifest's
    size: int  # bytes, compressed layers
    layers: int
    sharedLayers: int
    auth: bool  # pulls need a matching credential (which is never listed)


def catalogue_rows(catalogue: Catalogue) -> list[CatalogueRow]:
    images = catalogue.images()
    # Per distinct image (config digest): a moving tag (`latest`) and its version are one image,
    # and a layer they have in common is not one another image shares.
    distinct = {image.config_digest: image for image in images}.values()
    holders = Counter(digest for image in distinct for digest in {la.digest for la in image.layers})
    rows = [
        CatalogueRow(
            name=image.ref.familiar_name,
            repository=image.ref.name,
            tag=image.ref.tag,
            reference=familiar_string(image.ref),
            digest=image.manifest_digest,
            size=image.size,
            layers=len(image.layers),
            sharedLayers=sum(1 for la in image.layers if holders[la.digest] > 1),
            auth=image.auth is not None,
        )
        for image in images
    ]
    return sorted(rows, key=lambda r: (r["name"], r["tag"] or "", r["digest"]))


def render_table(rows: list[CatalogueRow]) -> str:
    """kubectl-style columns: upper-case headers, three spaces between columns."""
    header = ("NAME", "TAG", "SIZE", "LAYERS", "SHARED", "AUTH")
    cells: list[tuple[Any, ...]] = [header]
    cells.extend(
        (
            r["name"],
            r["tag"] or "<none>",
            format_size(r["size"]),
            r["layers"],
            r["sharedLayers"],
            "yes" if r["auth"] else "no",
        )
        for r in rows
    )
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    return "\n".join(
        "   ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
