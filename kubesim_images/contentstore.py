"""The node's real content store: blobs by digest on disk, image records in SQLite.

Laid out as containerd's content store is: `blobs/sha256/<hex>` holds only verified content,
downloads grow in `ingest/<hex>.partial` and reach `blobs/` by one atomic rename after their
size and sha256 were checked and the data fsynced. An image record (id = config digest, repo
tags, repo digests, size, last used, pinned) is committed in one SQLite transaction only after
every blob it names is in `blobs/` (the directory fsynced once before it, for all its renames),
and `rmi` deletes the record before the blobs it alone held. So after a `kill -9` at any instant
no partial blob is visible and no listed image lacks a blob; what a crash can leave is a partial
ingest (resumed by the next pull of that blob) or an unreferenced blob (swept by the next `rmi`
or `prune`).

Blobs are shared between images and counted by reference (`image_blobs`). Downloads of one
blob in one process are deduplicated with a per-digest lock (a second pull waits and then finds
the blob committed); across processes an `flock` on the ingest file keeps two writers apart,
the loser writing to a private ingest name instead. A pull in progress holds a lease on the
blobs it will name (containerd's leases): no sweep removes a leased blob, so a pull that found
a blob another pull wrote still finds it when it records the image, even when that other pull
has since removed its own record (`store: discard`) or image GC removed an image holding it.

It is also the container runtime image GC talks to on a node whose images are real
(`image_gc.ImageRuntime`): it lists images with their size, pinned flag (named by a pinned
reference, the sandbox image), first detection and last use; removes one with the same
record-first, blobs-after order (a blob goes only when no remaining image holds it) and says
how many bytes the disk got back; and reports the image filesystem, either a configured
capacity (`other_usage` plus the bytes under the store) or the free space of the filesystem the
store lives on, as cadvisor reports containerd's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from kubesim_images.errors import ImageFsStatsError, ImageRemoveError, KubesimError

if TYPE_CHECKING:
    from kubesim_images.image_gc import FsStats

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, size INTEGER NOT NULL, last_used REAL NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0, doc TEXT NOT NULL, first_detected REAL);
CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, image_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS image_blobs (
    image_id TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (image_id, digest));
CREATE INDEX IF NOT EXISTS image_blobs_digest ON image_blobs (digest);
"""
_HASH_CHUNK = 1 << 20
# How much of a blob is written before the disk is asked to start writing it back: large
# enough to be a few calls per blob, small enough that the final fsync has little left.
_WRITEBACK_BYTES = 8 << 20
_fadvise = getattr(os, "posix_fadvise", None)
_FADV_DONTNEED: int = getattr(os, "POSIX_FADV_DONTNEED", 4)


class ContentError(KubesimError):
    """Content that failed verification, or a store that cannot be used."""


@dataclass(frozen=True, slots=True)
class StoredImage:
    """One image record as `crictl images`/`inspecti` show it."""

    id: str  # the config digest
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int  # manifest(s), config and layers as pulled (compressed), as containerd counts
    last_used: float  # calendar seconds
    pinned: bool
    manifest_digest: str
    media_type: str
    platform: str
    config: str  # the config blob's digest (== id)
    layers: tuple[tuple[str, int], ...]  # (digest, size) in manifest order
    first_detected: float = 0.0  # calendar seconds: when this store first recorded the image


@dataclass(frozen=True, slots=True)
class ContentImage:
    """One image as image GC lists it (`image_gc.ListedImage`), times in calendar seconds."""

    id: str
    size: int
    pinned: bool
    first_detected: float
    last_used: float


def hex_of(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    if (
        algorithm != "sha256"
        or len(encoded) != 64
        or not all(c in "0123456789abcdef" for c in encoded)
    ):
        raise ContentError(f"unsupported digest {digest!r}: only sha256 is stored")
    return encoded


class BlobWriter(Protocol):
    """One blob being written into a store; `commit` verifies it and makes it visible. What a
    registry client writes into (`Ingest` here; a node's sink hands these out too)."""

    offset: int  # bytes already there (a resumed download)

    def restart(self) -> None: ...

    def write(self, chunk: bytes, /) -> None: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


class Ingest:
    """One blob being written: hashes as it goes, commits only verified content."""

    def __init__(
        self,
        store: ContentStore,
        digest: str,
        size: int,
        path: Path,
        file: BinaryIO,
        hasher: Any,
        offset: int,
    ) -> None:
        self._store = store
        self.digest = digest
        self.size = size
        self.path = path
        self._file = file
        self._hasher = hasher
        self.offset = offset  # bytes already written (and hashed)
        self._written_back = offset  # bytes the disk was asked to write so far

    def write(self, chunk: bytes) -> None:
        if self.offset + len(chunk) > self.size:
            raise ContentError(
                f'failed commit on ref "layer-{self.digest}": unexpected size '
                f"{self.offset + len(chunk)}, expected {self.size}: failed precondition"
            )
        self._file.write(chunk)
        self._hasher.update(chunk)
        self.offset += len(chunk)
        self._store.account(len(chunk))
        if self._store.durable and self.offset - self._written_back >= _WRITEBACK_BYTES:
            self._write_back()

    def _write_back(self) -> None:
        """Start the disk writing what the blob has so far, without waiting for it: the fsync
        before the commit then has only the tail left, instead of the whole blob at once on
        the pull's critical path. POSIX_FADV_DONTNEED is how Python can ask for it (Linux
        starts the writeback of the range, then drops the pages already clean: a layer is
        not read back by the pull); where it is missing, that fsync does it all."""
        if _fadvise is None:
            return
        self._file.flush()
        _fadvise(
            self._file.fileno(),
            self._written_back,
            self.offset - self._written_back,
            _FADV_DONTNEED,
        )
        self._written_back = self.offset

    def restart(self) -> None:
        """The server ignored our Range: start the blob again from byte 0."""
        self._store.account(-self.offset)
        self._file.seek(0)
        self._file.truncate()
        self._hasher = hashlib.sha256()
        self.offset = 0
        self._written_back = 0

    def commit(self) -> None:
        """Verify size and digest, fsync, and rename into `blobs/` (blocking: run in a thread)."""
        actual = "sha256:" + self._hasher.hexdigest()
        try:
            if self.offset != self.size:
                raise ContentError(
                    f'failed commit on ref "layer-{self.digest}": unexpected commit size '
                    f"{self.offset}, expected {self.size}: failed precondition"
                )
            if actual != self.digest:
                # Tampered or corrupted content never reaches blobs/ and is not resumed from.
                self._discard()
                raise ContentError(
                    f'failed commit on ref "layer-{self.digest}": unexpected commit digest '
                    f"{actual}, expected {self.digest}: failed precondition"
                )
            self._file.flush()
            if self._store.durable:
                os.fsync(self._file.fileno())
            blob = self._store.blob_path(self.digest)
            with contextlib.suppress(FileNotFoundError):
                # Another writer landed the same blob first: ours replaces its bytes.
                self._store.account(-blob.stat().st_size)
            # Renamed while the file is open and locked: a writer that opened the ingest name
            # and waits for its lock finds, once it has it, that the name left (`open_ingest`).
            self.path.replace(blob)
            # The directory entry is made durable once for all of an image's blobs, before
            # its record names them (`commit_image`), not once per blob.
            self._store.blobs_renamed()
        finally:
            self.close()

    def close(self) -> None:
        """Stop writing; a partial file stays in `ingest/` for the next attempt to resume."""
        if not self._file.closed:
            self._file.close()  # closing drops the flock too

    def _discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
            self._store.account(-self.offset)


class ContentStore:
    """Blobs and image records under one directory; methods are short and synchronous."""

    def __init__(
        self,
        root: Path,
        *,
        durable: bool = True,
        capacity: int | None = None,
        other_usage: int = 0,
        pinned: Iterable[str] = (),
    ) -> None:
        """`durable=False` skips every fsync (content verified and counted, then dropped, as
        `store: discard` does): a crash may then lose what was written, nothing else.

        `capacity` (bytes) makes the image filesystem a configured one holding `other_usage`
        besides this store; None measures the filesystem `root` is on. Images named by a
        `pinned` reference (`repo:tag` or `repo@digest`) are never garbage collected."""
        self.root = root
        self.durable = durable
        self.capacity = capacity
        self.other_usage = other_usage
        self.pinned_names = frozenset(pinned)
        self.blobs_dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        try:
            for directory in (root, self.blobs_dir, self.ingest_dir):
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(
                root / "images.db", isolation_level=None, check_same_thread=False, timeout=30
            )
            # A new store's set-up (the log mode, the tables) is synced with the first record,
            # not on its own: in WAL mode NORMAL never corrupts, it may only lose the last
            # commits to a power cut, and a store that lost its tables makes them again.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(f"BEGIN; {_SCHEMA} COMMIT;")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(images)")}
            if "first_detected" not in columns:  # a store written before image GC used it
                self._db.execute("ALTER TABLE images ADD COLUMN first_detected REAL")
            # Records are durable once committed (a pull said the image is there).
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        except (OSError, sqlite3.Error) as exc:
            raise ContentError(f"cannot open the content store in {root}: {exc}") from None
        # Commits run in worker threads (asyncio.to_thread) and two pulls may commit at once:
        # one connection, one statement or transaction at a time.
        self._lock = threading.RLock()
        self._blobs_dir_dirty = False  # renames into blobs/ not yet made durable
        # digest -> pulls in progress that will name it: never swept while leased
        self._leases: Counter[str] = Counter()
        self._leases_lock = threading.Lock()
        # digest -> (lock, pulls holding or waiting for it); dropped when the last one leaves
        self._downloading: dict[str, tuple[asyncio.Lock, int]] = {}
        # Bytes of blobs and partial downloads, counted as this process writes and removes
        # them (from worker threads, hence the lock), so measuring the disk is O(1); `rescan`
        # walks the directories again for what other processes did.
        self._bytes_lock = threading.Lock()
        try:
            self._disk_bytes = self._scan_bytes()
        except OSError as exc:
            raise ContentError(f"cannot open the content store in {root}: {exc}") from None

    def close(self) -> None:
        with self._lock:  # never under a commit running in a worker thread
            self._db.close()

    # -- blobs ---------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / hex_of(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    @contextlib.asynccontextmanager
    async def downloading(self, digest: str) -> AsyncIterator[None]:
        """Held while this process fetches `digest`, so concurrent pulls fetch it once."""
        lock, users = self._downloading.get(digest, (asyncio.Lock(), 0))
        self._downloading[digest] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._downloading[digest]
            if users == 1:
                del self._downloading[digest]
            else:
                self._downloading[digest] = (lock, users - 1)

    @contextlib.asynccontextmanager
    async def leased(self, digests: Iterable[str], *, sweep: bool) -> AsyncIterator[None]:
        """Held by a pull from before it looks for its blobs until after it recorded its image:
        the blobs `digests` names are not swept meanwhile. With `sweep` (a store that keeps
        nothing), those no other lease or image holds are removed on the way out."""
        held = sorted(set(digests))
        with self._leases_lock:
            self._leases.update(held)
        try:
            yield
        finally:
            with self._leases_lock:
                self._leases.subtract(held)
                for digest in held:
                    if self._leases[digest] <= 0:
                        del self._leases[digest]
            if sweep:
                await asyncio.shield(asyncio.to_thread(self._sweep, held))

    def open_ingest(self, digest: str, size: int) -> Ingest:
        """A writer for `digest`, resuming an earlier partial download when one is there.

        Blocking (it re-hashes the partial bytes): run it in a thread.
        """
        path = self.ingest_dir / f"{hex_of(digest)}.partial"
        file = _locked_ingest(path)
        if file is None:
            # Another writer is fetching this blob: write a private copy; both renames
            # land the same verified bytes.
            path = self.ingest_dir / f"{hex_of(digest)}.{uuid.uuid4().hex}.partial"
            file = path.open("w+b")
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        hasher = hashlib.sha256()
        file.seek(0)
        offset = 0
        while chunk := file.read(_HASH_CHUNK):
            hasher.update(chunk)
            offset += len(chunk)
        if offset > size:
            file.truncate(0)
            self.account(-offset)
            hasher, offset = hashlib.sha256(), 0
        file.seek(offset)
        return Ingest(self, digest, size, path, file, hasher, offset)

    def blobs_renamed(self) -> None:
        """A blob was renamed into `blobs/`: the directory needs an fsync before a record."""
        if self.durable:
            self._blobs_dir_dirty = True

    def _sync_blobs_dir(self) -> None:
        # Cleared before the fsync: a rename after it is either covered by this fsync or
        # marks the directory dirty again for the next record.
        if self._blobs_dir_dirty:
            self._blobs_dir_dirty = False
            self.sync_dir(self.blobs_dir)

    @staticmethod
    def sync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    # -- images --------------------------------------------------------------------------------
    def commit_image(self, image: StoredImage, blobs: Iterable[str]) -> StoredImage:
        """Record an image whose blobs are all committed; names move to it from older images."""
        blob_list = sorted(set(blobs))
        # After a power cut, a record must not name a blob whose rename was lost.
        self._sync_blobs_dir()
        # Checked under the database's write lock, which a sweep holds while it deletes: a blob
        # is either still there for this record or gone before it is written.
        with self._transaction() as db:
            missing = [d for d in blob_list if not self.has_blob(d)]
            if missing:
                raise ContentError(f"cannot record image {image.id}: blobs missing: {missing}")
            row = db.execute(
                "SELECT pinned, first_detected FROM images WHERE id = ?", (image.id,)
            ).fetchone()
            pinned = image.pinned or bool(row and row[0])
            # A pull of an image already here keeps when it was first detected.
            first = row[1] if row is not None and row[1] is not None else image.last_used
            db.execute(
                "INSERT OR REPLACE INTO images (id, size, last_used, pinned, doc, first_detected) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    image.id,
                    image.size,
                    image.last_used,
                    int(pinned),
                    json.dumps(_doc(image)),
                    first,
                ),
            )
            for name in image.repo_tags:
                db.execute("INSERT OR REPLACE INTO names VALUES (?, 'tag', ?)", (name, image.id))
            for name in image.repo_digests:
                db.execute("INSERT OR REPLACE INTO names VALUES (?, 'digest', ?)", (name, image.id))
            db.executemany(
                "INSERT OR IGNORE INTO image_blobs VALUES (?, ?)",
                [(image.id, d) for d in blob_list],
            )
            found = self._get(image.id)
        assert found is not None  # noqa: S101 - just written in the same transaction
        return found

    def get(self, image_id: str) -> StoredImage | None:
        with self._lock:
            return self._get(image_id)

    def _get(self, image_id: str) -> StoredImage | None:
        row = self._db.execute(
            "SELECT id, size, last_used, pinned, doc, first_detected FROM images WHERE id = ?",
            (image_id,),
        ).fetchone()
        if row is None:
            return None
        names = self._db.execute(
            "SELECT name, kind FROM names WHERE image_id = ? ORDER BY name", (image_id,)
        ).fetchall()
        return _image(row, names)

    def lookup(self, name: str) -> StoredImage | None:
        """An image by id (`sha256:...` or its hex prefix), `repo:tag` or `repo@digest`."""
        with self._lock:
            return self._lookup(name)

    def _lookup(self, name: str) -> StoredImage | None:
        row = self._db.execute("SELECT image_id FROM names WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return self.get(row[0])
        candidate = name if name.startswith("sha256:") else f"sha256:{name}"
        if len(candidate) >= len("sha256:") + 12:
            rows = self._db.execute(
                "SELECT id FROM images WHERE id >= ? AND id < ?",
                (candidate, candidate + "\uffff"),
            ).fetchall()
            if len(rows) == 1:
                return self.get(rows[0][0])
        return None

    def images(self) -> list[StoredImage]:
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM images ORDER BY id")]
            return [image for image in map(self._get, ids) if image is not None]

    def touch(self, image_id: str, now: float) -> None:
        with self._lock:
            self._db.execute("UPDATE images SET last_used = ? WHERE id = ?", (now, image_id))

    def remove(self, image_id: str) -> list[str]:
        """Delete the record first, then the blobs no other image holds; returns those digests."""
        return [digest for digest, _ in self._remove(image_id)]

    def _remove(self, image_id: str) -> list[tuple[str, int]]:
        with self._transaction() as db:
            blobs = [
                r[0]
                for r in db.execute(
                    "SELECT digest FROM image_blobs WHERE image_id = ?", (image_id,)
                ).fetchall()
            ]
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))
            db.execute("DELETE FROM names WHERE image_id = ?", (image_id,))
            db.execute("DELETE FROM image_blobs WHERE image_id = ?", (image_id,))
        return self._sweep(blobs)

    def refcount(self, digest: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM image_blobs WHERE digest = ?", (digest,)
            ).fetchone()
        return int(row[0])

    def prune_blobs(self) -> list[str]:
        """Delete every blob no image references (leftovers of a crash between the two steps)."""
        swept = self._sweep(["sha256:" + p.name for p in self.blobs_dir.iterdir()])
        return [digest for digest, _ in swept]

    def _sweep(self, digests: Iterable[str]) -> list[tuple[str, int]]:
        """Unlink the blobs no image references; (digest, bytes) of each one unlinked."""
        removed = []
        with self._transaction() as db:
            for digest in digests:
                row = db.execute("SELECT 1 FROM image_blobs WHERE digest = ?", (digest,))
                if row.fetchone() is None:
                    path = self.blob_path(digest)
                    # Under the leases' lock: a pull leasing the blob does so either before
                    # this (and it stays) or after it is gone (and that pull fetches it).
                    with self._leases_lock, contextlib.suppress(FileNotFoundError):
                        if self._leases[digest]:
                            continue
                        size = path.stat().st_size
                        path.unlink()
                        self.account(-size)
                        removed.append((digest, size))
        return removed

    # -- the runtime image GC talks to (`image_gc.ImageRuntime`) --------------------------------
    def list_images(self) -> list[ContentImage]:
        """Every image with what image GC orders and counts by: one query, no documents."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, size, pinned, first_detected, last_used FROM images ORDER BY id"
            ).fetchall()
            pinned = self._pinned_ids()
        return [
            ContentImage(
                image_id,
                int(size),
                bool(flag) or image_id in pinned,
                float(last_used if first is None else first),
                float(last_used),
            )
            for image_id, size, flag, first, last_used in rows
        ]

    def _pinned_ids(self) -> set[str]:
        if not self.pinned_names:
            return set()
        marks = ",".join("?" * len(self.pinned_names))
        query = f"SELECT image_id FROM names WHERE name IN ({marks})"  # noqa: S608 - only ?s
        return {row[0] for row in self._db.execute(query, sorted(self.pinned_names))}

    def remove_image(self, image_id: str) -> int:
        """Remove an image for GC; the bytes of the blobs no remaining image held.

        An image already gone frees nothing (containerd's NotFound, which GC does not count
        as a failure); a database or disk that refuses is an `ImageRemoveError`, and what was
        committed before it stays consistent (the record goes before its blobs).
        """
        try:
            return sum(size for _, size in self._remove(image_id))
        except (OSError, sqlite3.Error) as exc:
            raise ImageRemoveError(f"failed to remove image {image_id!r}: {exc}") from None

    def image_fs_stats(self) -> FsStats:
        """The configured capacity less what is used, or the store's filesystem as it is."""
        # Image GC's module is not needed by a pull, whose start-up is part of its time.
        from kubesim_images.image_gc import FsStats  # noqa: PLC0415

        if self.capacity is not None:
            try:
                used = self.other_usage + self.bytes_on_disk()
            except OSError as exc:
                raise ImageFsStatsError(f"failed to get imageFs info: {exc}") from None
            return FsStats(self.capacity, max(0, self.capacity - used))
        try:
            stats = os.statvfs(self.root)
        except OSError as exc:
            raise ImageFsStatsError(f"failed to get imageFs info: {exc}") from None
        return FsStats(stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize)

    def bytes_on_disk(self) -> int:
        """Bytes of the committed blobs and the partial downloads (both take room on disk), as
        counted since the last scan."""
        return self._disk_bytes

    def account(self, delta: int) -> None:
        """`delta` bytes more (or fewer) under the store, written or removed by this process."""
        with self._bytes_lock:
            self._disk_bytes += delta

    def rescan(self) -> int:
        """Walk the blobs and partial downloads again (O(files)): what other processes wrote
        or removed is counted from now on. Blocking: image GC does it in its worker thread."""
        total = self._scan_bytes()
        with self._bytes_lock:
            self._disk_bytes = total
        return total

    def _scan_bytes(self) -> int:
        total = 0
        for directory in (self.blobs_dir, self.ingest_dir):
            with os.scandir(directory) as entries:
                for entry in entries:
                    with contextlib.suppress(FileNotFoundError):  # removed as we look
                        total += entry.stat().st_size
        return total

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


def _locked_ingest(path: Path) -> BinaryIO | None:
    """The shared ingest file `path`, opened and locked; None when another writer holds it,
    or held it until it renamed it into `blobs/` (the file we opened is that committed blob
    now, never to be written to)."""
    file: BinaryIO = path.open("a+b")
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        there, here = path.stat(), os.fstat(file.fileno())
    except (BlockingIOError, FileNotFoundError):
        file.close()
        return None
    if (there.st_dev, there.st_ino) != (here.st_dev, here.st_ino):
        file.close()
        return None
    return file


def _doc(image: StoredImage) -> dict[str, Any]:
    return {
        "manifestDigest": image.manifest_digest,
        "mediaType": image.media_type,
        "platform": image.platform,
        "config": image.config,
        "layers": [[d, s] for d, s in image.layers],
    }


def _image(row: tuple[Any, ...], names: list[tuple[str, str]]) -> StoredImage:
    doc = json.loads(row[4])
    return StoredImage(
        id=row[0],
        repo_tags=tuple(n for n, kind in names if kind == "tag"),
        repo_digests=tuple(n for n, kind in names if kind == "digest"),
        size=int(row[1]),
        last_used=float(row[2]),
        pinned=bool(row[3]),
        manifest_digest=doc["manifestDigest"],
        media_type=doc["mediaType"],
        platform=doc["platform"],
        config=doc["config"],
        layers=tuple((d, int(s)) for d, s in doc["layers"]),
        first_detected=float(row[2] if row[5] is None else row[5]),
    )
