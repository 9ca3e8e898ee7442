"""Credentials are looked up once the pull has its slot, through an async provider chain
(kuberuntime_image.go's PullImage builds the keyring and looks up inside the admitted pull)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from kubesim_images.clock import run_virtual
from kubesim_images.credentials import KeyringProvider, ProviderChain, StaticCredentials
from kubesim_images.keyring import Credential, Keyring
from kubesim_images.kubeletconfig import KubeletConfig
from kubesim_images.puller import ImagePuller
from kubesim_images.reference import parse_normalized
from kubesim_images.registry.catalogue import Catalogue, make_image
from kubesim_images.registry.simulated import SimulatedRegistry
from kubesim_images.store import ImageStore

PUBLIC = parse_normalized("example.com/public:v1")
PRIVATE = parse_normalized("private.example.com/app:v1")
RIGHT = Credential("robot", "right", source="secret/regcred")
WRONG = Credential("robot", "wrong", source="secret/old")

# Both paths: one suspension (no QPS limit) and the coroutine steps (a QPS bucket).
PATHS = [
    pytest.param(KubeletConfig(registry_pull_qps=0), id="callbacks"),
    pytest.param(KubeletConfig(registry_pull_qps=5, registry_burst=10), id="coroutines"),
]


def _puller(config: KubeletConfig) -> ImagePuller:
    catalogue = Catalogue(
        [
            make_image(PUBLIC, [(1, None)]),
            dataclasses.replace(make_image(PRIVATE, [(1, None)]), auth=("robot", "right")),
        ]
    )
    # One round trip of 1 s per pull; serial pulls, so the second waits 1 s for its slot.
    return ImagePuller("n", SimulatedRegistry(catalogue, latency=1.0), ImageStore(), config)


class Changing:
    """A pod's pull secrets as the API holds them: read when the pull is admitted."""

    def __init__(self, *credentials: Credential) -> None:
        self.credentials = list(credentials)

    def keyring(self) -> Keyring:
        return Keyring(("private.example.com", c) for c in self.credentials)


@pytest.mark.parametrize("config", PATHS)
def test_a_secret_created_while_the_pull_waits_is_used(config):
    secrets = Changing()
    provider = ProviderChain(KeyringProvider(secrets.keyring), StaticCredentials(()))

    async def main():
        puller = _puller(config)
        first = asyncio.ensure_future(puller.pull(PUBLIC, image="public", pod="a"))
        second = asyncio.ensure_future(
            puller.pull(PRIVATE, image="private", pod="b", credentials=provider)
        )
        await asyncio.sleep(0.5)  # the private pull is queued behind the public one
        secrets.credentials.append(RIGHT)
        await first
        return await second

    result = run_virtual(main())
    assert result.waited_ns == 1_000_000_000
    assert result.record.repo_tags == ["private.example.com/app:v1"]


@pytest.mark.parametrize("config", PATHS)
def test_credentials_that_grew_while_queued_are_each_tried(config):
    secrets = Changing(WRONG)

    async def main():
        puller = _puller(config)
        first = asyncio.ensure_future(puller.pull(PUBLIC, image="public", pod="a"))
        second = asyncio.ensure_future(
            puller.pull(
                PRIVATE, image="private", pod="b", credentials=KeyringProvider(secrets.keyring)
            )
        )
        await asyncio.sleep(0.5)
        secrets.credentials.append(RIGHT)  # the wrong one is tried first, then this
        await first
        result = await second
        return result, asyncio.get_running_loop().time()

    result, finished = run_virtual(main())
    assert result.record.id
    assert finished == 3.0  # 1 s queued, 1 s refused with the wrong one, 1 s with the right


def test_a_provider_that_must_be_awaited_is_asked_once_the_pull_is_admitted():
    asked: list[float] = []

    class Plugin:
        """An exec credential plugin: nothing known without running it."""

        def ready(self, ref):
            return None

        async def provide(self, ref):
            asked.append(asyncio.get_running_loop().time())
            await asyncio.sleep(0.25)
            return [RIGHT]

    async def main():
        puller = _puller(KubeletConfig(registry_pull_qps=0))
        first = asyncio.ensure_future(puller.pull(PUBLIC, image="public", pod="a"))
        await asyncio.sleep(0)  # the public pull takes the slot
        result = await puller.pull(PRIVATE, image="private", pod="b", credentials=Plugin())
        await first
        return result

    result = run_virtual(main())
    assert asked == [1.0]  # when the slot came, not when the pull was queued
    assert result.pull_ns == 1_250_000_000  # the plugin's time counts as pulling
