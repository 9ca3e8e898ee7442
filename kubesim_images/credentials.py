"""Where a pull's credentials come from: a chain of providers, asked once the pull has its slot.

As the kubelet's `kuberuntime_image.go` `PullImage` does (`MakeDockerKeyring(pullSecrets,
keyring)` then `Lookup`), the lookup happens inside the pull the queue has admitted, after its
QPS token: a pull secret created, changed or deleted while a pull waits in the queue is seen.
The chain's order is the union keyring's: the pod's pull secrets, then the node's docker
config; each provider is async, so exec credential plugins (`CredentialProviderConfig`) can
join later without touching the puller. `ready` answers without waiting when every provider
can (those answering from memory), which lets a pull be started from a callback.

Credentials never reach logs, events, metrics or reports: `keyring.Credential`'s repr shows
only where it came from, and nothing here logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from kubesim_images.keyring import Credential, Keyring
from kubesim_images.reference import ImageReference


class CredentialProvider(Protocol):
    async def provide(self, ref: ImageReference) -> Sequence[Credential]:
        """The credentials to try for `ref`, in order (none: pull anonymously)."""
        ...

    def ready(self, ref: ImageReference) -> Sequence[Credential] | None:
        """The same answer now when it needs no waiting, else None (then `provide`)."""
        ...


class KeyringProvider:
    """A keyring read at lookup time: the node's docker config, or a pod's pull secrets as
    they are when the pull is admitted (`keyring` is called then)."""

    __slots__ = ("_keyring",)

    def __init__(self, keyring: Keyring | Callable[[], Keyring]) -> None:
        self._keyring = keyring

    def ready(self, ref: ImageReference) -> Sequence[Credential]:
        keyring = self._keyring
        return (keyring if isinstance(keyring, Keyring) else keyring()).lookup(ref)

    async def provide(self, ref: ImageReference) -> Sequence[Credential]:
        return self.ready(ref)


class StaticCredentials:
    """The same credentials for every image (`kubesim-images pull --creds`, tests)."""

    __slots__ = ("_credentials",)

    def __init__(self, credentials: Sequence[Credential]) -> None:
        self._credentials = tuple(credentials)

    def ready(self, ref: ImageReference) -> Sequence[Credential]:  # noqa: ARG002
        return self._credentials

    async def provide(self, ref: ImageReference) -> Sequence[Credential]:  # noqa: ARG002
        return self._credentials


class ProviderChain:
    """Providers asked in order; their answers concatenated (`UnionDockerKeyring`)."""

    __slots__ = ("_providers",)

    def __init__(self, *providers: CredentialProvider) -> None:
        self._providers = providers

    def ready(self, ref: ImageReference) -> Sequence[Credential] | None:
        found: list[Credential] = []
        for provider in self._providers:
            answer = provider.ready(ref)
            if answer is None:
                return None
            found.extend(answer)
        return found

    async def provide(self, ref: ImageReference) -> Sequence[Credential]:
        found: list[Credential] = []
        for provider in self._providers:
            found.extend(await provider.provide(ref))
        return found
