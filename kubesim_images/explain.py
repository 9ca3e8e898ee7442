"""`kubesim-images explain`: what the kubelet would make of image strings, as JSON or text.

For each image: whether it parses (with distribution's error when not), the normalised
reference and what is pulled, the pull policy a Pod would get, the decision the kubelet takes
with that policy and presence, and the credentials that would be tried (config keys only, never
a secret). Pure: no I/O beyond reading the optional docker config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubesim_images import reasons
from kubesim_images.errors import InvalidReferenceError
from kubesim_images.keyring import Keyring
from kubesim_images.policy import Decision, PullPolicy, decide, default_pull_policy
from kubesim_images.reference import parse_normalized


def explain_image(
    image: str,
    *,
    pull_policy: PullPolicy | None = None,
    present: bool = False,
    keyring: Keyring | None = None,
) -> dict[str, Any]:
    default = default_pull_policy(image)
    policy = pull_policy or default
    try:
        ref = parse_normalized(image)
    except InvalidReferenceError as exc:
        message = reasons.inspect_failed(image, str(exc))
        return {
            "image": image,
            "valid": False,
            "error": str(exc),
            "reference": None,
            "defaultPullPolicy": default.value,
            "pullPolicy": policy.value,
            "decision": {
                "action": "invalid-image-name",
                "waitingReason": "InvalidImageName",
                "event": {"type": "Warning", "reason": "InspectFailed", "message": message},
            },
            "credentials": [],
        }
    effective = ref.with_default_tag()
    decision = decide(policy, present)
    event: dict[str, str]
    waiting: str | None = None
    if decision is Decision.PULL:
        event = {"type": "Normal", "reason": "Pulling", "message": reasons.pulling(image)}
    elif decision is Decision.ALREADY_PRESENT:
        event = {"type": "Normal", "reason": "Pulled", "message": reasons.already_present(image)}
    else:
        waiting = "ErrImageNeverPull"
        event = {
            "type": "Warning",
            "reason": "ErrImageNeverPull",
            "message": reasons.never_pull(image),
        }
    credentials = keyring.lookup(ref) if keyring is not None else []
    return {
        "image": image,
        "valid": True,
        "error": None,
        "reference": {
            "normalized": str(effective),
            "registry": ref.domain,
            "repository": ref.path,
            "tag": effective.tag,
            "digest": ref.digest,
            "pullRef": ref.pull_ref,
        },
        "defaultPullPolicy": default.value,
        "pullPolicy": policy.value,
        "decision": {"action": decision.value, "waitingReason": waiting, "event": event},
        "credentials": [{"source": c.source, "match": c.match} for c in credentials],
    }


def explain(
    images: Sequence[str],
    *,
    pull_policy: PullPolicy | None = None,
    present: bool = False,
    keyring: Keyring | None = None,
) -> list[dict[str, Any]]:
    return [
        explain_image(i, pull_policy=pull_policy, present=present, keyring=keyring) for i in images
    ]


def render_text(results: Sequence[dict[str, Any]]) -> str:
    blocks: list[str] = []
    for item in results:
        lines = [item["image"]]
        if not item["valid"]:
            lines.append(f"  invalid:      {item['error']}")
            lines.append(
                f"  kubelet:      waiting InvalidImageName; "
                f"Warning InspectFailed: {item['decision']['event']['message']}"
            )
            blocks.append("\n".join(lines))
            continue
        ref = item["reference"]
        default_note = " (default)" if item["pullPolicy"] == item["defaultPullPolicy"] else ""
        event = item["decision"]["event"]
        lines += [
            f"  normalized:   {ref['normalized']}",
            f"  registry:     {ref['registry']}",
            f"  repository:   {ref['repository']}",
            f"  tag:          {ref['tag'] or '-'}",
            f"  digest:       {ref['digest'] or '-'}",
            f"  pulls:        {ref['pullRef']}",
            f"  pull policy:  {item['pullPolicy']}{default_note}",
            (
                f"  kubelet:      {item['decision']['action']}: "
                f"{event['type']} {event['reason']}: {event['message']}"
            ),
        ]
        if item["credentials"]:
            tried = ", ".join(f"{c['match']} ({c['source']})" for c in item["credentials"])
            lines.append(f"  credentials:  {tried}")
        else:
            lines.append("  credentials:  none matched (anonymous pull)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
