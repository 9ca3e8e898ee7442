"""Image GC decisions, translated from the kubelet's `image_gc_manager_test.go` (v1.32).

Each kubelet case keeps its name in the test's docstring and its numbers. The runtime is the
node's real in-memory store (one layer per image, so an image's size is its layer's); times are
integer nanoseconds where the kubelet's tests use `time.Now()` and a fake clock.
"""

from __future__ import annotations

import pytest

from kubesim_images.errors import ImageRemoveError, InvalidValueError
from kubesim_images.image_gc import (
    GCPolicy,
    GCReason,
    ImageGCManager,
)
from kubesim_images.reasons import EventType, Reason
from kubesim_images.store import ImageRecord, ImageStore, Layer

S = 1_000_000_000  # one second in nanoseconds
MINUTE = 60 * S
T0 = 1_000 * S  # an arbitrary instant well after the node's start


def image_id(n: int) -> str:
    return f"image-{n}"


def record(n: int, size: int, *, pinned: bool = False) -> ImageRecord:
    layer = Layer(f"sha256:{n:064x}", size)
    return ImageRecord(id=image_id(n), layers=(layer,), pinned=pinned)


def store_with(*images: ImageRecord, capacity: int | None = None, other: int = 0) -> ImageStore:
    store = ImageStore(capacity=capacity, other_usage=other)
    for image in images:
        store.add(image, None, 0)
    return store


def policy(**kwargs: int) -> GCPolicy:
    """The kubelet tests' `ImageGCPolicy{}`: every field zero unless given."""
    fields = {"high_threshold_percent": 0, "low_threshold_percent": 0, "min_age": 0}
    fields.update(kwargs)
    return GCPolicy(**fields)


def ids(store: ImageStore) -> list[str]:
    return sorted(image.id for image in store.list_images())


def free_space(manager: ImageGCManager, to_free: int, now: int, in_use=frozenset()):
    """The kubelet tests' getImagesAndFreeSpace: eviction order, then freeSpace."""
    images = manager.images_in_eviction_order(now, in_use)
    freed, _ = manager.free_space(to_free, now, images)
    return freed


class TestDetectImages:
    """detectImages: first detection, use, and forgetting removed images."""

    def test_initial_detect(self):
        """TestDetectImagesInitialDetect."""
        store = store_with(record(0, 1024), record(1, 2048), record(2, 2048))
        manager = ImageGCManager(policy(), store)
        manager.detect(T0, {image_id(1), image_id(2)})
        assert len(manager.records) == 3
        unused = manager.records[image_id(0)]
        assert (unused.first_detected, unused.last_used) == (T0, None)
        for n in (1, 2):
            used = manager.records[image_id(n)]
            assert (used.first_detected, used.last_used) == (T0, T0)

    def test_with_new_image(self):
        """TestDetectImagesWithNewImage: an image found later is first detected then."""
        store = store_with(record(0, 1024), record(1, 2048))
        manager = ImageGCManager(policy(), store)
        manager.detect(T0, {image_id(1)})
        store.add(record(2, 1024), None, 0)
        manager.detect(T0 + S, {image_id(1)})
        assert manager.records[image_id(0)].first_detected == T0
        assert manager.records[image_id(0)].last_used is None
        assert manager.records[image_id(1)].last_used == T0 + S
        assert manager.records[image_id(2)].first_detected == T0 + S
        assert manager.records[image_id(2)].last_used is None

    def test_container_stopped_keeps_last_used(self):
        """TestDetectImagesContainerStopped."""
        store = store_with(record(0, 1024), record(1, 2048))
        manager = ImageGCManager(policy(), store)
        manager.detect(T0, {image_id(1)})
        manager.detect(T0 + MINUTE, set())
        assert manager.records[image_id(0)].last_used is None
        assert manager.records[image_id(1)].last_used == T0
        assert manager.records[image_id(1)].first_detected == T0

    def test_removed_images_are_forgotten(self):
        """TestDetectImagesWithRemovedImages."""
        store = store_with(record(0, 1024), record(1, 2048))
        manager = ImageGCManager(policy(), store)
        manager.detect(T0, {image_id(1)})
        store.remove(image_id(0))
        store.remove(image_id(1))
        manager.detect(T0 + S, set())
        assert manager.records == {}


class TestFreeSpace:
    """freeSpace: what is eligible and in which order."""

    def test_images_in_use_are_ignored(self):
        """TestFreeSpaceImagesInUseContainersAreIgnored."""
        store = store_with(record(0, 1024), record(1, 2048))
        manager = ImageGCManager(policy(), store)
        assert free_space(manager, 2048, T0, {image_id(1)}) == 1024
        assert ids(store) == [image_id(1)]

    def test_delete_unused_images_removes_all_unused(self):
        """TestDeleteUnusedImagesRemoveAllUnusedImages."""
        store = store_with(record(0, 1024), record(1, 2048), record(2, 2048))
        manager = ImageGCManager(policy(), store)
        removed = manager.delete_unused_images(T0, {image_id(2)})
        assert sorted(r.image_id for r in removed) == [image_id(0), image_id(1)]
        assert ids(store) == [image_id(2)]

    def test_delete_unused_images_respects_min_age(self):
        """TestDeleteUnusedImagesLimitByImageLiveTime: 3 s min age, then 3 s later."""
        store = store_with(record(0, 1024), record(1, 2048), record(2, 2048))
        manager = ImageGCManager(policy(min_age=3 * S), store)
        manager.detect(T0, {image_id(2)})  # Start()'s first sweep
        assert manager.delete_unused_images(T0, {image_id(2)}) == []
        assert len(ids(store)) == 3
        manager.delete_unused_images(T0 + 3 * S, {image_id(2)})
        assert ids(store) == [image_id(2)]

    def test_least_recently_used_goes_first(self):
        """TestFreeSpaceRemoveByLeastRecentlyUsed: 1 was used after 0, so 0 goes."""
        store = store_with(record(0, 1024), record(1, 2048))
        manager = ImageGCManager(policy(), store)
        manager.detect(T0, {image_id(0), image_id(1)})
        manager.detect(T0 + S, {image_id(1)})
        manager.detect(T0 + 2 * S, set())
        assert free_space(manager, 1024, T0 + 2 * S + MINUTE) == 1024
        assert ids(store) == [image_id(1)]

    def test_never_used_goes_before_used(self):
        """TestFreeSpaceTiesBrokenByDetectedTime: 1, never seen in use, goes before 0."""
        store = store_with(record(0, 1024))
        manager = ImageGCManager(policy(), store)
        manager.detect(T0, {image_id(0)})
        store.add(record(1, 2048), None, 0)
        manager.detect(T0 + S, {image_id(0)})
        manager.detect(T0 + 2 * S, set())
        assert free_space(manager, 1024, T0 + 2 * S) == 2048
        assert ids(store) == [image_id(0)]

    def test_ties_on_last_used_are_broken_by_first_detection(self):
        """Same last use: the image detected earlier goes first, whatever its id or size."""
        store = store_with(record(5, 4096))
        manager = ImageGCManager(policy(), store)
        manager.detect(T0, set())
        store.add(record(1, 1024), None, 0)
        manager.detect(T0 + S, set())
        store.add(record(3, 2048), None, 0)
        manager.detect(T0 + 2 * S, set())
        order = manager.images_in_eviction_order(T0 + 3 * S, set())
        assert [image for image, _ in order] == [image_id(5), image_id(1), image_id(3)]
        for i in (5, 1, 3):
            manager.records[image_id(i)].last_used = T0 + 2 * S
        order = manager.images_in_eviction_order(T0 + 3 * S, set())
        assert [image for image, _ in order] == [image_id(5), image_id(1), image_id(3)]

    def test_stops_once_enough_is_freed(self):
        """Images go one by one, counted by size, until the amount is reached."""
        store = store_with(record(0, 100), record(1, 100), record(2, 100))
        manager = ImageGCManager(policy(), store)
        manager.detect(T0, set())
        assert free_space(manager, 150, T0 + S) == 200
        assert ids(store) == [image_id(2)]

    def test_image_not_old_enough(self):
        """TestGarbageCollectImageNotOldEnough: 1 m min age; nothing, then one image."""
        store = store_with(record(0, 1024), record(1, 2048))
        manager = ImageGCManager(policy(min_age=MINUTE), store)
        in_use = {image_id(1)}
        manager.detect(T0, in_use)
        assert free_space(manager, 1024, T0, in_use) == 0
        assert len(ids(store)) == 2
        assert free_space(manager, 1024, T0 + MINUTE - 1, in_use) == 0
        assert free_space(manager, 1024, T0 + MINUTE, in_use) == 1024
        assert ids(store) == [image_id(1)]

    def test_restored_first_detection_counts_for_min_age_and_order(self):
        """A runtime that kept first detections across a restart: the minimum age runs from
        then, and the restored image goes before one detected after the restart."""
        store = store_with(record(1, 1024), record(2, 1024))
        manager = ImageGCManager(policy(min_age=MINUTE), store)
        manager.restore(image_id(2), T0 - MINUTE, None)
        manager.detect(T0, set())
        assert manager.records[image_id(1)].first_detected == T0
        assert manager.records[image_id(2)].first_detected == T0 - MINUTE
        assert manager.records[image_id(2)].size == 1024
        assert free_space(manager, 1, T0 + S) == 1024
        assert ids(store) == [image_id(1)]


class TestPinned:
    """Pinned images (the sandbox image) are never collected."""

    def test_sandbox_image_is_exempt(self):
        """TestDeleteUnusedImagesExemptSandboxImage."""
        store = ImageStore(pinned=["registry.k8s.io/pause:3.10"])
        pause = record(0, 1024)
        pause.repo_tags.append("registry.k8s.io/pause:3.10")
        store.add(pause, None, 0)
        manager = ImageGCManager(policy(), store)
        assert manager.delete_unused_images(T0, set()) == []
        assert ids(store) == [image_id(0)]

    def test_do_not_delete_pinned_image(self):
        """TestDoNotDeletePinnedImage."""
        store = store_with(record(1, 1024, pinned=True), record(2, 1024))
        manager = ImageGCManager(policy(), store)
        assert free_space(manager, 4096, T0) == 1024
        assert ids(store) == [image_id(1)]

    def test_delete_unpinned_images(self):
        """TestDeleteUnPinnedImage."""
        store = store_with(record(1, 1024), record(2, 1024))
        manager = ImageGCManager(policy(), store)
        assert free_space(manager, 2048, T0) == 2048
        assert ids(store) == []

    def test_all_pinned_images(self):
        """TestAllPinnedImages."""
        store = store_with(record(1, 1024, pinned=True), record(2, 1024, pinned=True))
        manager = ImageGCManager(policy(), store)
        assert free_space(manager, 2048, T0) == 0
        assert len(ids(store)) == 2


class TestGarbageCollect:
    """GarbageCollect: thresholds, the amount to free, its failure text and events."""

    def test_below_low_threshold_does_nothing(self):
        """TestGarbageCollectBelowLowThreshold: 40 % used."""
        store = store_with(record(0, 400), capacity=1000)
        manager = ImageGCManager(policy(high_threshold_percent=90, low_threshold_percent=80), store)
        run = manager.garbage_collect(T0, set())
        assert (run.error, run.usage_percent, run.amount_to_free, run.removed) == (
            None,
            40,
            0,
            (),
        )
        assert ids(store) == [image_id(0)]

    def test_frees_enough(self):
        """TestGarbageCollectBelowSuccess: 95 % used, a 450-byte image frees enough."""
        store = store_with(record(0, 450), capacity=1000, other=500)
        manager = ImageGCManager(policy(high_threshold_percent=90, low_threshold_percent=80), store)
        run = manager.garbage_collect(T0, set())
        assert run.error is None
        assert (run.usage_percent, run.amount_to_free, run.freed) == (95, 150, 450)
        assert [(r.image_id, r.reason) for r in run.removed] == [(image_id(0), GCReason.SPACE)]
        assert run.events == ()
        assert store.usage == 500

    def test_not_enough_freed(self):
        """TestGarbageCollectNotEnoughFreed: the kubelet's text and FreeDiskSpaceFailed."""
        store = store_with(record(0, 50), capacity=1000, other=900)
        manager = ImageGCManager(policy(high_threshold_percent=90, low_threshold_percent=80), store)
        run = manager.garbage_collect(T0, set())
        message = (
            "Failed to garbage collect required amount of images. Attempted to free 150 bytes, "
            "but only found 50 bytes eligible to free."
        )
        assert run.error == message
        assert [(e.type, e.reason, e.message) for e in run.events] == [
            (EventType.WARNING, Reason.FREE_DISK_SPACE_FAILED, message)
        ]

    def test_exactly_at_the_high_threshold_collects(self):
        """usagePercent >= high: 85 % of 1000 used with the defaults frees down to 80 %."""
        store = store_with(record(0, 30), record(1, 30), capacity=1000, other=790)
        manager = ImageGCManager(GCPolicy(min_age=0), store)
        manager.detect(T0, set())
        run = manager.garbage_collect(T0 + S, set())
        assert (run.usage_percent, run.amount_to_free, run.freed) == (85, 50, 60)
        assert store.usage == 790

    def test_usage_percent_rounds_up(self):
        """`100 - available*100/capacity` truncates the free share: 84.9 % used is 85 %."""
        store = store_with(record(0, 840), capacity=1000)
        manager = ImageGCManager(GCPolicy(min_age=0), store)
        assert manager.garbage_collect(T0, set()).usage_percent == 84
        assert ids(store) == [image_id(0)]
        store.other_usage = 9
        run = manager.garbage_collect(T0, set())
        assert (run.usage_percent, run.amount_to_free) == (85, 49)
        assert ids(store) == []

    def test_invalid_capacity(self):
        """A zero-capacity filesystem: InvalidDiskCapacity and the kubelet's error."""
        store = store_with(record(0, 0), capacity=0)
        run = ImageGCManager(GCPolicy(), store).garbage_collect(T0, set())
        assert run.error == "invalid capacity 0 on image filesystem"
        assert [e.reason for e in run.events] == [Reason.INVALID_DISK_CAPACITY]

    def test_image_gc_failed_only_for_repeated_failures(self):
        """The GC loop: ImageGCFailed from the second failure in a row, reset by a success."""
        store = store_with(record(0, 50), capacity=1000, other=900)
        manager = ImageGCManager(policy(high_threshold_percent=90, low_threshold_percent=80), store)
        reasons = []
        for minute in (5, 10, 15):
            run = manager.periodic(minute * MINUTE, set())
            reasons.append([e.reason for e in run.events])
        store.other_usage = 0
        reasons.append([e.reason for e in manager.periodic(20 * MINUTE, set()).events])
        store.other_usage = 990
        reasons.append([e.reason for e in manager.periodic(25 * MINUTE, set()).events])
        failed, gc_failed = Reason.FREE_DISK_SPACE_FAILED, Reason.IMAGE_GC_FAILED
        assert reasons == [[failed], [failed, gc_failed], [failed, gc_failed], [], [failed]]

    def test_collected_total_counts_by_reason(self):
        """kubelet_image_garbage_collected_total{reason}: age and space counted apart."""
        store = store_with(record(0, 100), record(1, 100), record(2, 500), capacity=1000, other=0)
        manager = ImageGCManager(policy(max_age=10 * MINUTE, high_threshold_percent=50), store)
        manager.detect(0, {image_id(0), image_id(1), image_id(2)})
        manager.detect(5 * MINUTE, {image_id(1), image_id(2)})
        run = manager.garbage_collect(14 * MINUTE, set())
        # 0 unused since 0 (> 10 m): age. Then 600 of 1000 used (60 % >= 50 %): free down to
        # 0 % (low 0), oldest first: 1 and 2, both last used at 5 m.
        assert [(r.image_id, r.reason) for r in run.removed] == [
            (image_id(0), GCReason.AGE),
            (image_id(1), GCReason.SPACE),
            (image_id(2), GCReason.SPACE),
        ]
        assert manager.collected_total == {GCReason.AGE: 1, GCReason.SPACE: 2}


class TestMaximumAge:
    """freeOldImages: imageMaximumGCAge removes unused images whatever the usage."""

    def test_image_too_old(self):
        """TestGarbageCollectImageTooOld: kept at its last use, gone max age + 1 ns later."""
        store = store_with(record(0, 1024), record(1, 2048))
        manager = ImageGCManager(policy(max_age=MINUTE), store, began=T0)
        images = manager.images_in_eviction_order(T0, {image_id(1)})
        assert [image for image, _ in images] == [image_id(0)]
        images[0][1].last_used = T0  # a pod used it just now
        images, removed = manager.free_old_images(images, T0)
        assert (len(images), removed) == (1, [])
        images, removed = manager.free_old_images(images, T0 + MINUTE + 1)
        assert images == []
        assert [(r.image_id, r.reason) for r in removed] == [(image_id(0), GCReason.AGE)]
        assert ids(store) == [image_id(1)]

    def test_exactly_max_age_is_kept(self):
        """`now - lastUsed > MaxAge`, strictly."""
        store = store_with(record(0, 1024))
        manager = ImageGCManager(GCPolicy(min_age=0, max_age=MINUTE), store, began=0)
        manager.detect(T0, {image_id(0)})
        assert manager.garbage_collect(T0 + MINUTE, set()).removed == ()
        assert len(manager.garbage_collect(T0 + MINUTE + 1, set()).removed) == 1

    def test_not_before_the_node_is_max_age_old(self):
        """Images never seen in use are not taken for old before the node has run max age."""
        store = store_with(record(0, 1024))
        manager = ImageGCManager(GCPolicy(min_age=0, max_age=MINUTE), store, began=T0)
        assert manager.garbage_collect(T0 + MINUTE, set()).removed == ()
        run = manager.garbage_collect(T0 + MINUTE + 1, set())
        assert [r.reason for r in run.removed] == [GCReason.AGE]

    def test_max_age_disabled(self):
        """TestGarbageCollectImageMaxAgeDisabled: never, however far the clock moves."""
        store = store_with(record(0, 1024), record(1, 2048))
        manager = ImageGCManager(policy(max_age=0), store, began=T0)
        images = manager.images_in_eviction_order(T0, {image_id(1)})
        images, removed = manager.free_old_images(images, T0)
        assert (len(images), removed) == (1, [])
        images, removed = manager.free_old_images(images, (1 << 63) - 1)
        assert (len(images), removed) == (1, [])
        assert len(ids(store)) == 2


class TestSharedLayers:
    """A layer is freed only when no remaining image uses it."""

    def test_shared_base_is_kept_until_its_last_image_goes(self):
        base = Layer("sha256:" + "b" * 64, 600)
        app1 = ImageRecord(id="app1", layers=(base, Layer("sha256:" + "1" * 64, 100)))
        app2 = ImageRecord(id="app2", layers=(base, Layer("sha256:" + "2" * 64, 100)))
        store = ImageStore(capacity=1000)
        store.add(app1, None, 0)
        store.add(app2, None, 0)
        assert store.usage == 800  # the base counted once
        manager = ImageGCManager(GCPolicy(min_age=0), store)
        manager.detect(0, set())
        store.other_usage = 50  # 850 of 1000: at the high threshold, 50 bytes to free
        run = manager.garbage_collect(MINUTE, {"app2"})
        # The kubelet counts app1's 700 bytes as freed; the disk gets back only its own 100.
        assert (run.amount_to_free, run.freed) == (50, 700)
        assert [(r.image_id, r.size, r.released) for r in run.removed] == [("app1", 700, 100)]
        assert store.usage == 750
        assert store.has_layer(base.digest)
        run = manager.garbage_collect(2 * MINUTE, set())
        assert run.removed == ()  # 75 %: under the high threshold
        assert store.remove_image("app2") == 700
        assert not store.has_layer(base.digest)
        assert store.usage == 50

    def test_a_second_run_frees_what_sharing_kept(self):
        """Sizes overstate what sharing images free; the next run sees the true usage."""
        base = Layer("sha256:" + "b" * 64, 500)
        images = [
            ImageRecord(id=f"app{i}", layers=(base, Layer(f"sha256:{i:064x}", 100)))
            for i in range(4)
        ]
        store = ImageStore(capacity=1000)
        for image in images:
            store.add(image, None, 0)
        store.other_usage = 60  # 960 of 1000: 96 %
        manager = ImageGCManager(GCPolicy(min_age=0), store)
        manager.detect(0, set())
        first = manager.garbage_collect(5 * MINUTE, set())
        assert (first.amount_to_free, first.freed, first.released) == (160, 600, 100)
        assert store.usage == 860  # still 86 %
        second = manager.garbage_collect(10 * MINUTE, set())
        assert (second.amount_to_free, second.freed, second.released) == (60, 600, 100)
        assert store.usage == 760


class TestRemovalErrors:
    """A runtime that refuses a removal: GC goes on, then reports the kubelet's error."""

    class Refusing(ImageStore):
        def remove_image(self, image_id):
            if image_id == "image-0":
                raise ImageRemoveError("image is in use by a container")
            return super().remove_image(image_id)

    def test_free_space_continues_past_a_failed_removal(self):
        store = self.Refusing(capacity=1000)
        for image in (record(0, 400), record(1, 500)):
            store.add(image, None, 0)
        manager = ImageGCManager(GCPolicy(min_age=0), store)
        manager.detect(0, set())
        run = manager.garbage_collect(MINUTE, set())
        assert run.error == (
            "wanted to free 100 bytes, but freed 500 bytes space with errors in image "
            "deletion: image is in use by a container"
        )
        assert [r.image_id for r in run.removed] == [image_id(1)]
        assert ids(store) == [image_id(0)]


class TestPolicy:
    """NewImageGCManager's validation, with its texts."""

    @pytest.mark.parametrize(
        ("high", "low", "error"),
        [
            (2, 1, None),
            (-1, 0, "invalid HighThresholdPercent -1, must be in range [0-100]"),
            (101, 0, "invalid HighThresholdPercent 101, must be in range [0-100]"),
            (0, -1, "invalid LowThresholdPercent -1, must be in range [0-100]"),
            (100, 101, "invalid LowThresholdPercent 101, must be in range [0-100]"),
            (1, 2, "LowThresholdPercent 2 can not be higher than HighThresholdPercent 1"),
        ],
    )
    def test_validate(self, high, low, error):
        """TestValidateImageGCPolicy."""
        if error is None:
            GCPolicy(high, low)
        else:
            with pytest.raises(InvalidValueError) as exc:
                GCPolicy(high, low)
            assert str(exc.value) == error

    def test_from_kubelet_seconds(self):
        assert GCPolicy.from_seconds(85, 80, 120.0, 1.5) == GCPolicy(85, 80, 120 * S, 1_500_000_000)

    def test_high_threshold_100_disables_gc(self):
        assert not GCPolicy(100, 80).enabled
        assert GCPolicy().enabled
