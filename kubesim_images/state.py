"""The daemon's durable state: one SQLite file under the state directory.

Everything a restart must find again is written through as it changes, in WAL mode, so a
`kill -9` at any instant loses at most the change being made: API objects (pods as created and
defaulted, secrets, service accounts), each pod's container statuses, each node's images,
back-off entries and events. An API write is one `transaction()`: its statements commit
together or not at all, and the caller changes its memory only after the commit, so a write the
API acknowledged is on disk and a write that failed left nothing behind. Objects are deleted by
UID, never by name, so deleting an object cannot remove a newer one that took its name. Every
database error is a `StateError`. Times are stored as calendar seconds (epoch), because loop
time restarts with the process. The directory is 0700 and the database 0600: secrets are at
rest in it.

The directory belongs to one daemon at a time: `lock_state_dir` takes an exclusive `flock` on
`<state-dir>/lock` before anything is restored and holds it for the life of the process (the
kernel drops it on `kill -9`), because two daemons writing one database each believe their own
memory and lose each other's acknowledged writes. The image verbs that write the content store
(`pull`, `rmi`) take the same lock shared: they may run beside each other, never beside a daemon.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
    uid TEXT, PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS pod_status (uid TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS node_images (
    node TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (node, id));
CREATE TABLE IF NOT EXISTS backoff (
    key TEXT PRIMARY KEY, backoff REAL NOT NULL, last_update REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    name TEXT PRIMARY KEY, namespace TEXT NOT NULL, seq INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kubesim-images"


class StateDirInUse(Exception):
    """Another kubesim-images process holds the state directory."""


def lock_state_dir(directory: Path, *, shared: bool = False) -> int:
    """Lock `directory` for this process and return the lock's descriptor (closing it releases
    the lock); raise `StateDirInUse` naming the holder when another process has it."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise StateDirInUse(
            f"state directory {directory} is in use by another kubesim-images process{who}"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    # A holder's pid, for the message the refused process prints; fixed width, so shared
    # holders writing at once leave one whole pid rather than a mix of two.
    os.pwrite(fd, f"{os.getpid():<16}\n".encode(), 0)
    return fd


class StateError(Exception):
    """A write the database refused (disk full, read-only, locked): nothing of it was saved."""


def _dumps(doc: Any) -> str:
    # allow_nan=False: what is stored must read back as JSON, in this process and in kubectl.
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, allow_nan=False)


class StateStore:
    """Write-through persistence; every method is one short synchronous statement."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        self.path = directory / "state.db"
        if not self.path.exists():
            # Create the file 0600 before SQLite opens it; its WAL and SHM files inherit that.
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self.path.chmod(0o600)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._execute("PRAGMA journal_mode=WAL")
        self._execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._execute("PRAGMA table_info(objects)")}
        if "uid" not in columns:  # a state directory written before objects had their UID
            self._execute("ALTER TABLE objects ADD COLUMN uid TEXT")
            self._execute("UPDATE objects SET uid = json_extract(doc, '$.metadata.uid')")
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StateError(str(exc)) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Every statement inside commits together or is rolled back; raises `StateError`."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
            self._execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0

    # -- API objects -------------------------------------------------------------------------
    def put_object(self, kind: str, namespace: str, name: str, doc: Any) -> None:
        self._execute(
            "INSERT OR REPLACE INTO objects (kind, namespace, name, doc, uid) "
            "VALUES (?, ?, ?, ?, ?)",
            (kind, namespace, name, _dumps(doc), doc["metadata"]["uid"]),
        )

    def delete_object(self, kind: str, uid: str) -> None:
        """Delete by identity: a newer object that took the same name is left alone."""
        self._execute("DELETE FROM objects WHERE kind = ? AND uid = ?", (kind, uid))

    def objects(self, kind: str) -> list[Any]:
        rows = self._execute(
            "SELECT doc FROM objects WHERE kind = ? ORDER BY namespace, name", (kind,)
        )
        return [json.loads(doc) for (doc,) in rows]

    # -- pod runtime status ------------------------------------------------------------------
    def put_pod_status(self, uid: str, doc: Any) -> None:
        self._execute(
            "INSERT OR REPLACE INTO pod_status (uid, doc) VALUES (?, ?)", (uid, _dumps(doc))
        )

    def delete_pod_status(self, uid: str) -> None:
        self._execute("DELETE FROM pod_status WHERE uid = ?", (uid,))

    def pod_statuses(self) -> dict[str, Any]:
        rows = self._execute("SELECT uid, doc FROM pod_status")
        return {uid: json.loads(doc) for uid, doc in rows}

    # -- each node's images ------------------------------------------------------------------
    def put_image(self, node: str, image_id: str, doc: Any) -> None:
        self._execute(
            "INSERT OR REPLACE INTO node_images (node, id, doc) VALUES (?, ?, ?)",
            (node, image_id, _dumps(doc)),
        )

    def delete_image(self, node: str, image_id: str) -> None:
        self._execute("DELETE FROM node_images WHERE node = ? AND id = ?", (node, image_id))

    def images(self, node: str) -> list[Any]:
        rows = self._execute("SELECT doc FROM node_images WHERE node = ? ORDER BY id", (node,))
        return [json.loads(doc) for (doc,) in rows]

    def adopt_images(self, node: str) -> None:
        """A state directory from before the daemon had several nodes kept one node's images
        in `images`: they are that (first) node's. Moved once, in one transaction."""
        with self.transaction():
            self._execute(
                "INSERT OR IGNORE INTO node_images (node, id, doc) SELECT ?, id, doc FROM images",
                (node,),
            )
            self._execute("DELETE FROM images")

    # -- back-off ----------------------------------------------------------------------------
    def put_backoff(self, key: str, backoff: float, last_update_epoch: float) -> None:
        self._execute(
            "INSERT OR REPLACE INTO backoff (key, backoff, last_update) VALUES (?, ?, ?)",
            (key, backoff, last_update_epoch),
        )

    def delete_backoff(self, key: str) -> None:
        self._execute("DELETE FROM backoff WHERE key = ?", (key,))

    def backoffs(self) -> dict[str, tuple[float, float]]:
        rows = self._execute("SELECT key, backoff, last_update FROM backoff")
        return {key: (backoff, last) for key, backoff, last in rows}

    # -- events ------------------------------------------------------------------------------
    def put_event(self, name: str, namespace: str, seq: int, doc: Any) -> None:
        self._execute(
            "INSERT OR REPLACE INTO events (name, namespace, seq, doc) VALUES (?, ?, ?, ?)",
            (name, namespace, seq, _dumps(doc)),
        )

    def delete_event(self, name: str) -> None:
        self._execute("DELETE FROM events WHERE name = ?", (name,))

    def events(self) -> Iterator[Any]:
        for (doc,) in self._execute("SELECT doc FROM events ORDER BY seq"):
            yield json.loads(doc)

    # -- counters ----------------------------------------------------------------------------
    def get_meta(self, key: str, default: str = "") -> str:
        row = self._execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def put_meta(self, key: str, value: str) -> None:
        self._execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
