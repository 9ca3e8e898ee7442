"""`pull`, `images`, `rmi`, `inspecti`: crictl's image verbs on the real content store.

The store lives under the state directory (`<state-dir>/content`), the same one the daemon
uses: `pull` and `rmi` refuse to write it while a daemon holds it (`state.lock_state_dir`).
`pull` is a real pull from a real registry (SPEC section 6): plain HTTP only with
`--insecure` or for loopback, credentials from `--creds` or a docker config (each matching one
tried in turn, as the kubelet does), a progress bar on a terminal. Errors are containerd's
texts on stderr with exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesim_images.errors import ConfigError, InvalidReferenceError, RegistryError
from kubesim_images.keyring import Credential, Keyring, load_docker_config
from kubesim_images.reference import ImageReference, parse_normalized
from kubesim_images.startup import imports_without_gc, without_default_cas

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from kubesim_images.contentstore import ContentStore, StoredImage
    from kubesim_images.oci.client import ClientConfig
    from kubesim_images.oci.media import Platform
    from kubesim_images.oci.pull import PullResult

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def add_parsers(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the node's state (default: $XDG_STATE_HOME/kubesim-images)",
    )
    pl = commands.add_parser(
        "pull",
        parents=[*parents, state],
        help="pull an image from a real registry into the node's store",
        description="Pull an image from a real OCI registry into the content store.",
    )
    pl.add_argument("image", metavar="IMAGE")
    pl.add_argument("--creds", metavar="USER:PASSWORD", help="registry credentials")
    pl.add_argument("--docker-config", metavar="FILE", help="credentials from a docker config")
    pl.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]", help="platform to pull (default: the host's)"
    )
    pl.add_argument(
        "--insecure", action="store_true", help="plain HTTP to this registry (loopback always)"
    )
    pl.add_argument("--ca-file", metavar="FILE", help="an extra CA certificate (PEM) for HTTPS")
    pl.add_argument(
        "--max-concurrent-downloads", type=int, default=3, metavar="N", help="layers at a time (3)"
    )
    pl.add_argument("-o", "--output", choices=("json", "text"), default="text")

    im = commands.add_parser(
        "images", parents=[*parents, state], help="list images in the node's store"
    )
    im.add_argument("filter", nargs="?", metavar="REPOSITORY[:TAG]")
    im.add_argument("-o", "--output", choices=("json", "table"), default="table")
    im.add_argument("-q", "--quiet", action="store_true", help="only image ids")

    rm = commands.add_parser(
        "rmi", parents=[*parents, state], help="remove images from the node's store"
    )
    rm.add_argument("images", nargs="*", metavar="IMAGE")
    rm.add_argument("-a", "--all", action="store_true", help="remove every image")
    rm.add_argument("-q", "--prune", action="store_true", help="remove unreferenced blobs too")

    ins = commands.add_parser(
        "inspecti", parents=[*parents, state], help="show images' status and config"
    )
    ins.add_argument("images", nargs="+", metavar="IMAGE")
    ins.add_argument("-o", "--output", choices=("json",), default="json")


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _open(args: argparse.Namespace, *, writes: bool = False) -> ContentStore | None:
    """The store, or None once the reason it cannot be opened is on stderr. `pull` and `rmi`
    write (`writes`); `images` and `inspecti` only read, which SQLite allows beside a writer."""
    # The store (and SQLite) load with the verbs that use it: every command builds this
    # module's parsers, and a scenario run's start-up is part of the time it takes.
    from kubesim_images.contentstore import ContentError, ContentStore  # noqa: PLC0415
    from kubesim_images.state import (  # noqa: PLC0415
        StateDirInUse,
        default_state_dir,
        lock_state_dir,
    )

    try:
        base = Path(args.state_dir) if args.state_dir else default_state_dir()
        if writes:
            # Shared with other verbs, refused while a daemon holds the directory (its memory
            # of the node's images would go stale). Held until this short-lived process exits.
            lock_state_dir(base, shared=True)
        return ContentStore(base / "content")
    except (ContentError, StateDirInUse) as exc:
        _fail(str(exc))
        return None


def _credentials(args: argparse.Namespace, ref: ImageReference) -> list[Credential | None]:
    if args.creds:
        user, sep, password = args.creds.partition(":")
        if not sep:
            raise ConfigError("--creds must be USER:PASSWORD")
        return [Credential(user, password, source="--creds")]
    if args.docker_config:
        found: list[Credential | None] = [
            *Keyring(load_docker_config(args.docker_config)).lookup(ref)
        ]
        return found or [None]
    return [None]


def pull(args: argparse.Namespace, left: list[object] | None = None) -> int:
    """`left`: where the store is left open for a process about to end (see `_leave`)."""
    # ssl and a thread pool (and asyncio and aiohttp, below) load only with the verb that
    # talks to registries: every command builds this module's parsers, a scenario run included.
    import ssl  # noqa: PLC0415
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    from kubesim_images.oci.media import Platform  # noqa: PLC0415 - the registry verb's own
    from kubesim_images.oci.tls import tls_context  # noqa: PLC0415

    try:
        ref = parse_normalized(args.image).with_default_tag()
        platform = Platform.parse(args.platform) if args.platform else None
        credentials = _credentials(args, ref)
    except (InvalidReferenceError, ConfigError, ValueError) as exc:
        return _fail(str(exc), EXIT_INVALID)
    if args.max_concurrent_downloads < 1:
        return _fail("--max-concurrent-downloads must be at least 1", EXIT_INVALID)
    if args.ca_file:
        try:  # the file only: the system's CAs are loaded once, by the client
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(args.ca_file)
        except (OSError, ssl.SSLError) as exc:
            return _fail(f"--ca-file {args.ca_file}: cannot load the CA: {exc}", EXIT_INVALID)
    # The start overlaps (it is part of the pull's time): a thread loads the CAs into the
    # client's TLS context (OpenSSL parses them without the GIL) and then opens the store
    # (made, locked, its database set up and synced: waits on the disk), while this one
    # imports asyncio, then aiohttp. The context is built before aiohttp is imported with the
    # CA locations pointing at nothing (`without_default_cas`), and the store's opening makes
    # no TLS context: only aiohttp's unused defaults are made without CAs.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pull-start") as pool:
        building = pool.submit(tls_context, args.ca_file)
        opening = pool.submit(_open, args, writes=True)
        with imports_without_gc():
            import asyncio  # noqa: PLC0415
        tls = building.result()
        with imports_without_gc(), without_default_cas():
            from kubesim_images.oci.client import ClientConfig, registry_host  # noqa: PLC0415
        store = opening.result()
    if store is None:
        return EXIT_FAILED
    config = ClientConfig(
        insecure=frozenset({registry_host(ref)} if args.insecure else ()),
        ca_file=args.ca_file,
        max_concurrent_downloads=args.max_concurrent_downloads,
    )
    try:
        result = asyncio.run(_pull(store, config, tls, ref, credentials, platform, args.output))
    except RegistryError as exc:
        return _fail(str(exc))
    finally:
        _leave(store, left)
    image = result.image
    if args.output == "json":
        document = {
            "image": str(ref),
            "id": image.id,
            "repoDigest": result.repo_digest,
            "size": image.size,
            "layers": [digest for digest, _ in image.layers],
        }
        print(json.dumps(document, indent=2))
    else:
        print(f"Image is up to date for {image.id}")
    return EXIT_OK


def _leave(store: ContentStore, left: list[object] | None) -> None:
    """Close the store, or leave it open in `left` when the process ends next: closing the
    last connection checkpoints SQLite's log into the database, two more fsyncs at the end of
    a pull that make nothing more durable (the record was synced into the log at its commit).
    The next process to open the store finds the log and reads it, as after a kill -9, and a
    later checkpoint (a commit that grows the log past its limit, a closing daemon or verb)
    moves it into the database."""
    if left is None:
        store.close()
    else:
        left.append(store)


async def _pull(
    store: ContentStore,
    config: ClientConfig,
    tls: ssl.SSLContext,
    ref: ImageReference,
    credentials: list[Credential | None],
    platform: Platform | None,
    output: str,
) -> PullResult:
    import asyncio  # noqa: PLC0415

    from kubesim_images.clock import WallClock  # noqa: PLC0415
    from kubesim_images.oci.client import RegistryClient  # noqa: PLC0415
    from kubesim_images.oci.pull import pull_image  # noqa: PLC0415

    now = WallClock(asyncio.get_running_loop())
    bar, on_progress = (
        _progress_bar(ref)
        if output == "text" and sys.stderr.isatty()
        else (
            contextlib.nullcontext(),
            None,
        )
    )
    async with RegistryClient(config, tls=tls) as client:
        with bar:
            for index, credential in enumerate(credentials):
                try:
                    return await pull_image(
                        client,
                        store,
                        ref,
                        credential=credential,
                        platform=platform,
                        now=now.epoch(now.now_ns()),
                        progress=on_progress,
                    )
                except RegistryError as exc:
                    # The kubelet tries the next matching credential only when refused.
                    if exc.code != "unauthorized" or index + 1 == len(credentials):
                        raise
    raise AssertionError("unreachable: credentials is never empty")  # pragma: no cover


def _progress_bar(
    ref: ImageReference,
) -> tuple[AbstractContextManager[object], Callable[[int, int], None]]:
    """rich's bar on a terminal; imported only then (a pull's start-up is part of its time)."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        Progress,
        TransferSpeedColumn,
    )

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(f"pulling {ref}", total=None)

    def on_progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, on_progress


def _find(store: ContentStore, name: str) -> StoredImage | None:
    found = store.lookup(name)
    if found is not None:
        return found
    try:
        ref = parse_normalized(name).with_default_tag()
    except InvalidReferenceError:
        return None
    key = f"{ref.name}@{ref.digest}" if ref.digest else f"{ref.name}:{ref.tag}"
    return store.lookup(key)


def _status(image: StoredImage) -> dict[str, Any]:
    return {
        "id": image.id,
        "repoTags": list(image.repo_tags),
        "repoDigests": list(image.repo_digests),
        "size": str(image.size),
        "uid": None,
        "username": "",
        "spec": None,
        "pinned": image.pinned,
    }


def human_size(size: int) -> str:
    """go-units' HumanSize, as crictl prints sizes: decimal units, 4 significant digits."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{value:.4g}{unit}"
        value /= 1000
    return f"{value:.4g}PB"  # pragma: no cover - the loop returns


def images(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return EXIT_FAILED
    try:
        listed = store.images()
    finally:
        store.close()
    if args.filter:
        try:
            wanted = parse_normalized(args.filter)
        except InvalidReferenceError as exc:
            return _fail(str(exc), EXIT_INVALID)
        listed = [
            i
            for i in listed
            if any(
                t.rpartition(":")[0] == wanted.name
                and (wanted.tag is None or t.endswith(f":{wanted.tag}"))
                for t in i.repo_tags
            )
        ]
    if args.quiet:
        for image in listed:
            print(image.id)
        return EXIT_OK
    if args.output == "json":
        print(json.dumps({"images": [_status(i) for i in listed]}, indent=2))
        return EXIT_OK
    rows = [("IMAGE", "TAG", "IMAGE ID", "SIZE")]
    for image in listed:
        short = image.id.removeprefix("sha256:")[:13]
        tags = [t.rpartition(":") for t in image.repo_tags] or [("<none>", ":", "<none>")]
        for repo, _, tag in tags:
            rows.append((repo, tag, short, human_size(image.size)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return EXIT_OK


def rmi(args: argparse.Namespace) -> int:
    if not args.images and not args.all and not args.prune:
        return _fail("image id cannot be empty", EXIT_INVALID)
    store = _open(args, writes=True)
    if store is None:
        return EXIT_FAILED
    status = EXIT_OK
    try:
        targets = store.images() if args.all else []
        for name in args.images:
            found = _find(store, name)
            if found is None:
                print(f"error: no such image {name}", file=sys.stderr)
                status = EXIT_FAILED
                continue
            targets.append(found)
        for image in {i.id: i for i in targets}.values():
            store.remove(image.id)
            for name in image.repo_tags or image.repo_digests or (image.id,):
                print(f"Deleted: {name}")
        if args.prune:
            store.prune_blobs()
    finally:
        store.close()
    return status


def inspecti(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return EXIT_FAILED
    documents = []
    status = EXIT_OK
    try:
        for name in args.images:
            found = _find(store, name)
            if found is None:
                print(f"error: no such image {name} present", file=sys.stderr)
                status = EXIT_FAILED
                continue
            try:
                spec = json.loads(store.read_blob(found.config))
            except (OSError, ValueError):
                spec = None
            info = {
                "imageSpec": spec,
                "manifestDigest": found.manifest_digest,
                "mediaType": found.media_type,
                "platform": found.platform,
                "layers": [{"digest": d, "size": s} for d, s in found.layers],
                "lastUsed": found.last_used,
            }
            documents.append({"status": _status(found), "info": info})
    finally:
        store.close()
    if documents:
        print(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    return status
