"""The rules of the kinds the daemon only stores: Secrets and ServiceAccounts.

Each is a `storage.Strategy`: what a create takes from the body and what a patched object must
satisfy, with the apiserver's texts. Everything else about storing them is `ObjectStorage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubesim_images.daemon.kube import invalid
from kubesim_images.daemon.objects import secret_data, validate_pull_secret_refs, validate_secret
from kubesim_images.daemon.shapes import keep_shape
from kubesim_images.pod import FieldError


def _type_must_be_a_string(name: str) -> Exception:
    return invalid(
        "Secret", name, [FieldError("type", "FieldValueInvalid", "Invalid value: must be a string")]
    )


class SecretStrategy:
    def prepare_create(self, body: Mapping[str, Any], doc: dict[str, Any]) -> None:
        name = doc["metadata"]["name"]
        secret_type = body.get("type") or "Opaque"
        if not isinstance(secret_type, str):
            raise _type_must_be_a_string(name)
        doc["type"] = secret_type
        doc["data"] = secret_data(body, name)
        validate_secret(doc)

    def shape(self, doc: dict[str, Any]) -> dict[str, Any]:
        return keep_shape(doc, "Secret")

    def prepare_update(
        self, doc: dict[str, Any], before: Mapping[str, Any], patch: Mapping[str, Any]
    ) -> None:
        name = doc["metadata"]["name"]
        if not isinstance(doc.get("type", "Opaque"), str):
            raise _type_must_be_a_string(name)
        if not doc.get("type"):  # a replacement without one: defaulted, as at create
            doc["type"] = "Opaque"
        if doc.get("type") != before.get("type"):
            raise invalid(
                "Secret",
                name,
                [
                    FieldError(
                        "type",
                        "FieldValueInvalid",
                        f'Invalid value: "{doc.get("type")}": field is immutable',
                    )
                ],
            )
        if "stringData" in doc or "data" in patch:
            doc["data"] = secret_data(doc, name)  # the checks create applies, base64 included
            doc.pop("stringData", None)
        validate_secret(doc)


class ServiceAccountStrategy:
    def prepare_create(self, body: Mapping[str, Any], doc: dict[str, Any]) -> None:
        refs = body.get("imagePullSecrets")
        validate_pull_secret_refs(refs, "ServiceAccount", doc["metadata"]["name"])
        if refs:
            doc["imagePullSecrets"] = [{"name": r["name"]} for r in refs]

    def shape(self, doc: dict[str, Any]) -> dict[str, Any]:
        return keep_shape(doc, "ServiceAccount")

    def prepare_update(
        self, doc: dict[str, Any], before: Mapping[str, Any], patch: Mapping[str, Any]
    ) -> None:
        del before, patch
        validate_pull_secret_refs(
            doc.get("imagePullSecrets"), "ServiceAccount", doc["metadata"]["name"]
        )
