"""Image GC against an independent oracle, over random nodes (Hypothesis).

Each example builds a node's store (images sharing some layers, some pinned), replays detection
sweeps with random images in use, then runs one GC. The oracle recomputes from the outside what
the kubelet would remove: images unused for longer than the maximum age first, then, when usage
is at or over the high threshold, the shortest run of eligible images in (last used, first
detected) order whose sizes reach the amount to free.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kubesim_images.image_gc import GCPolicy, GCReason, ImageGCManager
from kubesim_images.store import ImageRecord, ImageStore, Layer

S = 1_000_000_000
PERIOD = 300 * S

nodes = st.fixed_dictionaries(
    {
        "images": st.lists(
            st.tuples(
                st.integers(0, 3),  # which shared base layer (3: none)
                st.integers(1, 400),  # own layer size
                st.booleans(),  # pinned
                st.integers(0, 5),  # sweep that first detects it
            ),
            min_size=1,
            max_size=12,
        ),
        "sweeps": st.lists(st.sets(st.integers(0, 11)), min_size=1, max_size=6),
        "in_use": st.sets(st.integers(0, 11)),
        "other": st.integers(0, 3000),
        "high": st.integers(1, 100),
        "gap": st.integers(0, 20),
        "min_age_periods": st.integers(0, 3),
        "max_age_periods": st.integers(0, 8),
    }
)


def build(example):
    bases = [Layer(f"sha256:{'b' * 63}{i}", 100 * (i + 1)) for i in range(3)]
    store = ImageStore(capacity=4000, other_usage=example["other"])
    images = []
    for n, (base, own, pinned, _) in enumerate(example["images"]):
        layers = ((bases[base],) if base < 3 else ()) + (Layer(f"sha256:{n:064x}", own),)
        images.append(ImageRecord(id=f"img-{n:02d}", layers=layers, pinned=pinned))
    return store, images


@settings(max_examples=300, deadline=None)
@given(nodes)
def test_gc_removes_what_the_oracle_says(example):
    store, images = build(example)
    high = example["high"]
    low = max(0, high - example["gap"])
    policy = GCPolicy(
        high, low, example["min_age_periods"] * PERIOD, example["max_age_periods"] * PERIOD
    )
    manager = ImageGCManager(policy, store, began=0)
    ids = [image.id for image in images]
    first_seen: dict[str, int] = {}
    last_used: dict[str, int] = {}
    sweeps = example["sweeps"]
    for sweep, using in enumerate(sweeps):
        now = sweep * PERIOD
        for image, (_, _, _, appears) in zip(images, example["images"], strict=True):
            if appears == sweep:
                store.add(image, None, 0)
        present = {image.id for image in store.list_images()}
        in_use = {ids[i] for i in using if i < len(ids) and ids[i] in present}
        manager.detect(now, in_use)
        for image_id in present:
            first_seen.setdefault(image_id, now)
        for image_id in in_use:
            last_used[image_id] = now
    for image, (_, _, _, appears) in zip(images, example["images"], strict=True):
        if appears >= len(sweeps):
            store.add(image, None, 0)  # pulled after the last sweep: detected by the GC run
    now = len(sweeps) * PERIOD
    present = {image.id: image for image in store.list_images()}
    in_use = {ids[i] for i in example["in_use"] if i < len(ids) and ids[i] in present}
    for image_id in present:
        first_seen.setdefault(image_id, now)
    for image_id in in_use:
        last_used[image_id] = now
    usage_before = store.usage

    run = manager.garbage_collect(now, in_use)

    # The oracle.
    never = -(1 << 63)
    candidates = sorted(
        (i for i in present if i not in in_use and not present[i].pinned),
        key=lambda i: (last_used.get(i, never), first_seen[i], i),
    )
    expected_age = []
    max_age = policy.max_age
    if max_age and now > max_age:
        expected_age = [i for i in candidates if now - last_used.get(i, never) > max_age]
    remaining = [i for i in candidates if i not in expected_age]
    age_released = sum(r.released for r in run.removed if r.reason is GCReason.AGE)
    available = 4000 - (usage_before - age_released)
    usage_percent = 100 - max(0, available) * 100 // 4000
    expected_space: list[str] = []
    amount = 0
    if usage_percent >= high:
        amount = 4000 * (100 - low) // 100 - max(0, available)
        freed = 0
        for i in remaining:
            if last_used.get(i, never) >= now or now - first_seen[i] < policy.min_age:
                continue
            if freed >= amount and expected_space:
                break
            expected_space.append(i)
            freed += present[i].size
            if freed >= amount:
                break

    assert [r.image_id for r in run.removed if r.reason is GCReason.AGE] == expected_age
    assert [r.image_id for r in run.removed if r.reason is GCReason.SPACE] == expected_space
    assert run.amount_to_free == amount
    assert (run.error is not None) == (usage_percent >= high and run.freed < amount)
    assert store.usage == usage_before - run.released
    kept = {image.id for image in store.list_images()}
    assert in_use <= kept
    assert {i for i in present if present[i].pinned} <= kept
