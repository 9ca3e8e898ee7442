"""Credentials for a pull: the pod's pull secrets first, then the node's docker config.

As the kubelet's `UnionDockerKeyring`: the keyring built from the pod's `imagePullSecrets` (the
secrets that exist, decoded) is asked before the node's own. The pod workers get a provider
chain per pod (`credentials.ProviderChain`); the puller asks it once the pull has its slot, so
the secrets are read then: one created while a pull waits in the queue is used. A secret is
decoded once per resourceVersion, not once per pull: a node pulling for hundreds of pods that
share a secret parses its docker config once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubesim_images.credentials import CredentialProvider, KeyringProvider, ProviderChain
from kubesim_images.daemon.objects import ObjectTable, secret_credentials
from kubesim_images.keyring import Credential, Keyring
from kubesim_images.pod import Pod


class PullCredentials:
    """The node's `CredentialLookup`: called by the pod workers with a pod."""

    def __init__(self, secrets: ObjectTable, node_keyring: Keyring) -> None:
        self._secrets = secrets
        self._node = KeyringProvider(node_keyring)
        # (namespace, name) -> (resourceVersion, decoded docker config entries)
        self._decoded: dict[tuple[str, str], tuple[str, list[tuple[str, Credential]]]] = {}

    def __call__(self, pod: Pod) -> CredentialProvider:
        def pod_keyring() -> Keyring:
            return Keyring(
                entry
                for name in pod.image_pull_secrets
                if (secret := self._secrets.get((pod.namespace, name))) is not None
                for entry in self._entries(secret)
            )

        return ProviderChain(KeyringProvider(pod_keyring), self._node)

    def _entries(self, secret: Mapping[str, Any]) -> list[tuple[str, Credential]]:
        meta = secret["metadata"]
        key, version = (meta["namespace"], meta["name"]), meta["resourceVersion"]
        cached = self._decoded.get(key)
        if cached is None or cached[0] != version:
            cached = self._decoded[key] = (version, secret_credentials(secret))
        return cached[1]
