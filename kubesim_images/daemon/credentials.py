"""Credential lookup for a pull: the pod's pull secrets first, then the node's docker config.

As the kubelet's `UnionDockerKeyring`: the keyring built from the pod's `imagePullSecrets` (the
secrets that exist, decoded) is asked before the node's own. A secret is decoded once per
resourceVersion, not once per pull: a node pulling for hundreds of pods that share a secret
parses its docker config once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubesim_images.daemon.objects import ObjectTable, secret_credentials
from kubesim_images.keyring import Credential, Keyring, UnionKeyring
from kubesim_images.pod import Pod
from kubesim_images.reference import ImageReference


class PullCredentials:
    """The node's `CredentialLookup`: called by the pod workers with a pod and a reference."""

    def __init__(self, secrets: ObjectTable, node_keyring: Keyring) -> None:
        self._secrets = secrets
        self._node_keyring = node_keyring
        # (namespace, name) -> (resourceVersion, decoded docker config entries)
        self._decoded: dict[tuple[str, str], tuple[str, list[tuple[str, Credential]]]] = {}

    def __call__(self, pod: Pod, ref: ImageReference) -> Sequence[Credential]:
        pod_keyring = Keyring(
            entry
            for name in pod.image_pull_secrets
            if (secret := self._secrets.get((pod.namespace, name))) is not None
            for entry in self._entries(secret)
        )
        return UnionKeyring(pod_keyring, self._node_keyring).lookup(ref)

    def _entries(self, secret: Mapping[str, Any]) -> list[tuple[str, Credential]]:
        meta = secret["metadata"]
        key, version = (meta["namespace"], meta["name"]), meta["resourceVersion"]
        cached = self._decoded.get(key)
        if cached is None or cached[0] != version:
            cached = self._decoded[key] = (version, secret_credentials(secret))
        return cached[1]
