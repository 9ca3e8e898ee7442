"""Images written straight into a real content store, as a pull commits them but without a
registry: for tests of what the store does with many images (GC, crashes)."""

from __future__ import annotations

import hashlib
import json

from kubesim_images.contentstore import ContentStore, StoredImage

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def blobs_of(image: StoredImage) -> list[str]:
    return [image.manifest_digest, image.config, *(digest for digest, _ in image.layers)]


def put_blob(store: ContentStore, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    ingest = store.open_ingest(digest, len(data))
    try:
        ingest.write(data)
        ingest.commit()
    finally:
        ingest.close()
    return digest


def put_image(store: ContentStore, name: str, index: int, now: float) -> StoredImage:
    """An image written straight into the store: a layer shared by every tenth image, one of
    its own, its config and manifest (what a pull commits, without the registry)."""
    shared = f"shared layer {index % 10}".encode() * 512
    own = f"own layer {index}".encode() * 256
    layers = [(put_blob(store, data), len(data)) for data in (shared, own)]
    config_body = json.dumps({"architecture": "amd64", "os": "linux", "n": index}).encode()
    config = put_blob(store, config_body)
    manifest_body = json.dumps({"config": config, "layers": layers}).encode()
    manifest = put_blob(store, manifest_body)
    image = StoredImage(
        id=config,
        repo_tags=(name,),
        repo_digests=(f"{name.rpartition(':')[0]}@{manifest}",),
        size=len(manifest_body) + len(config_body) + sum(size for _, size in layers),
        last_used=now,
        pinned=False,
        manifest_digest=manifest,
        media_type=OCI_MANIFEST,
        platform="linux/amd64",
        config=config,
        layers=tuple(layers),
    )
    return store.commit_image(image, blobs_of(image))
