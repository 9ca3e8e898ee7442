"""`make bench` (real pulls): our OCI pull against `skopeo copy`, and our memory per image size.

A CNCF distribution registry (Debian `docker-registry`) runs on loopback with storage in a temp
dir, seeded with skopeo from OCI layouts written here (random, uncompressed tar layers, so the
registry and the network path are what is measured, not gzip). Then, in the same run:

- wall time of `kubesim-images pull` of a ~200 MiB image (4 layers) vs `skopeo copy` of the
  same image to an OCI layout, both as fresh processes into empty destinations, runs
  alternated; we report the ratio of medians (target <= 1.0x);
- our peak RSS (the child's `ru_maxrss`, through a small spawner: see `PEAK_RSS`) pulling a
  50 MiB and a 500 MiB single-layer image (target: flat, < 64 MiB), which shows that blobs
  stream to disk rather than through memory.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import kubesim_images

REGISTRY = "/usr/bin/docker-registry"
MI = 1 << 20
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _blob_file(layout: Path, path: Path, media_type: str) -> dict[str, object]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MI):
            digest.update(chunk)
    name = digest.hexdigest()
    size = path.stat().st_size
    path.replace(layout / "blobs" / "sha256" / name)
    return {"mediaType": media_type, "digest": f"sha256:{name}", "size": size}


def _blob(layout: Path, data: bytes, media_type: str) -> dict[str, object]:
    name = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / name).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{name}", "size": len(data)}


def write_image(layout: Path, tag: str, layer_mib: list[int]) -> None:
    """An image of random layers (uncompressed tars, written in chunks: memory stays small)."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layers = []
    for i, mib in enumerate(layer_mib):
        tmp = layout / f"layer-{tag}-{i}.tar"
        source = layout / f"random-{tag}-{i}"
        with source.open("wb") as f:
            for _ in range(mib):
                f.write(os.urandom(MI))
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            info = tar.gettarinfo(str(source), arcname=f"data/{i}.bin")
            info.mtime = 0
            with source.open("rb") as f:
                tar.addfile(info, f)
        source.unlink()
        layers.append(_blob_file(layout, tmp, LAYER_TAR))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layers]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _blob(
            layout, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"
        ),
        "layers": layers,
    }
    desc = _blob(layout, json.dumps(manifest).encode(), manifest["mediaType"])
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index_path = layout / "index.json"
    index = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "manifests": []}
    )
    index["manifests"].append(desc)
    index_path.write_text(json.dumps(index))


def start_registry(work: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(work / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    (work / "registry.json").write_text(json.dumps(config))
    log = (work / "registry.log").open("w")
    proc = subprocess.Popen(
        [REGISTRY, "serve", str(work / "registry.json")], stdout=log, stderr=log, text=True
    )
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while "listening on" not in (work / "registry.log").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"docker-registry did not start: {(work / 'registry.log').read_text()}")
        time.sleep(0.05)
    return proc, host


def timed(command: list[str]) -> float:
    """Wall seconds of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status = os.waitpid(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        sys.exit(f"{command[:4]} failed: {proc.stderr.read().decode()}")
    if proc.stderr is not None:
        proc.stderr.close()
    return wall


# Peak RSS through a small process started for it: Linux carries a process's high-water mark
# into the children it starts (fork or vfork, then exec), so a child of this one, grown past
# 50 MiB by the in-process pulls, would report this one's peak, not its own. The spawner's own
# (a bare interpreter, about 11 MiB) is the floor of what it reports.
PEAK_RSS = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(child.pid, 0)
if os.waitstatus_to_exitcode(status):
    sys.exit(child.stderr.read().decode())
print(usage.ru_maxrss * 1024)
"""


def peak_rss(command: list[str]) -> int:
    """Peak RSS (bytes) of one child process, its own alone."""
    spawner = [sys.executable, "-c", PEAK_RSS, *command]
    done = subprocess.run(spawner, check=False, capture_output=True)
    if done.returncode != 0:
        sys.exit(f"{command[:4]} failed: {done.stderr.decode()}")
    return int(done.stdout)


# What `kubesim-images pull` imports before it talks to the registry, as it imports it (the
# TLS context it builds meanwhile in a thread is not part of this).
PULL_IMPORTS = """
from kubesim_images.startup import imports_without_gc, without_default_cas
with imports_without_gc():
    import kubesim_images.cli
with imports_without_gc():
    import asyncio
with imports_without_gc(), without_default_cas():
    import kubesim_images.oci.client
import kubesim_images.oci.pull
"""


def start_up(runs: int) -> tuple[float, float]:
    """Median wall seconds of a bare interpreter and of one that imports what a pull does."""
    bare = [timed([sys.executable, "-c", "pass"]) for _ in range(runs)]
    imports = [timed([sys.executable, "-c", PULL_IMPORTS]) for _ in range(runs)]
    return statistics.median(bare), statistics.median(imports)


def in_process_pull(image: str, state: Path) -> float:
    """Our pull without the interpreter's start and imports: the transfer itself."""
    from kubesim_images.contentstore import ContentStore  # noqa: PLC0415
    from kubesim_images.oci.client import ClientConfig, RegistryClient  # noqa: PLC0415
    from kubesim_images.oci.media import Platform  # noqa: PLC0415
    from kubesim_images.oci.pull import pull_image  # noqa: PLC0415
    from kubesim_images.reference import parse_normalized  # noqa: PLC0415

    async def pull() -> float:
        store = ContentStore(state)
        start = time.perf_counter()
        async with RegistryClient(ClientConfig()) as client:
            await pull_image(
                client, store, parse_normalized(image), platform=Platform("linux", "amd64")
            )
        store.close()
        return time.perf_counter() - start

    wall = asyncio.run(pull())
    shutil.rmtree(state)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="small images (a smoke run)")
    args = parser.parse_args()
    skopeo = shutil.which("skopeo")
    if skopeo is None or not Path(REGISTRY).exists():
        sys.exit("bench/pull.py needs Debian's docker-registry and skopeo (.ci/run installs them)")
    scale = 16 if args.quick else 1
    # As installed (pip compiles a package's modules at install), not compiled from source at
    # every start when PYTHONDONTWRITEBYTECODE is set; the bytecode goes to __pycache__, which
    # git ignores. skopeo is a compiled program: our start-up is measured the same way.
    compileall.compile_dir(Path(kubesim_images.__file__).parent, quiet=1)
    ours = [sys.executable, "-m", "kubesim_images", "pull", "--platform", "linux/amd64"]
    with tempfile.TemporaryDirectory(prefix="kubesim-bench-pull-") as tmp:
        work = Path(tmp)
        layout = work / "layout"
        write_image(layout, "big", [m // scale for m in (80, 60, 40, 20)])
        write_image(layout, "m50", [50 // scale])
        write_image(layout, "m500", [500 // scale])
        registry, host = start_registry(work)
        try:
            for tag in ("big", "m50", "m500"):
                subprocess.run(
                    [skopeo, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
                     f"docker://{host}/bench/{tag}:v1"], check=True,
                )  # fmt: skip
            shutil.rmtree(layout)
            image = f"{host}/bench/big:v1"
            our_walls, skopeo_walls = [], []
            # Run 0 warms the registry's page cache and is not counted; the order alternates
            # so neither tool always goes first.
            for run in range(args.runs + 1):
                state, dest = work / f"state-{run}", work / f"skopeo-{run}"
                dest.mkdir()
                commands = {
                    "ours": [*ours, image, "--state-dir", str(state)],
                    "skopeo": [skopeo, "copy", "-q", "--src-tls-verify=false",
                               f"docker://{image}", f"oci:{dest}:v1"],
                }  # fmt: skip
                order = ["ours", "skopeo"] if run % 2 else ["skopeo", "ours"]
                walls = {name: timed(commands[name]) for name in order}
                if run:
                    our_walls.append(walls["ours"])
                    skopeo_walls.append(walls["skopeo"])
                shutil.rmtree(state)
                shutil.rmtree(dest)
            inproc_s = statistics.median(
                in_process_pull(image, work / f"inproc-{run}") for run in range(args.runs)
            )
            ours_s, skopeo_s = statistics.median(our_walls), statistics.median(skopeo_walls)
            size = 200 // scale
            print(
                f"pull of a {size} MiB image (4 layers) from a local registry, median of {args.runs}:"
            )
            print(f"  kubesim-images pull: {ours_s:.3f} s ({size / ours_s:.0f} MiB/s)")
            print(f"  skopeo copy:         {skopeo_s:.3f} s ({size / skopeo_s:.0f} MiB/s)")
            print(
                f"  our pull in-process: {inproc_s:.3f} s (the same pull without the interpreter's "
                f"start and imports; {inproc_s / skopeo_s:.2f}x skopeo's process)"
            )
            bare_s, imports_s = start_up(2 * args.runs + 1)
            print(
                f"  start-up: {bare_s:.3f} s a bare interpreter, {imports_s:.3f} s one that "
                f"imports what a pull does (aiohttp among it); in-process pull + imports = "
                f"{inproc_s + imports_s:.3f} s"
            )
            ratio = ours_s / skopeo_s
            print(f"  ratio: {ratio:.2f}x (target <= 1.0x) {'OK' if ratio <= 1.0 else 'OVER'}")
            rss = {
                tag: peak_rss(
                    [*ours, f"{host}/bench/{tag}:v1", "--state-dir", str(work / f"rss-{tag}")]
                )
                for tag in ("m50", "m500")
            }
            floor = peak_rss([sys.executable, "-c", "pass"])
            print(f"peak RSS of kubesim-images pull (a bare interpreter: {floor / MI:.1f} MiB):")
            for tag, label in (("m50", 50 // scale), ("m500", 500 // scale)):
                print(f"  {label} MiB image: {rss[tag] / MI:.1f} MiB")
            flat = rss["m500"] / rss["m50"]
            ok = max(rss.values()) < 64 * MI
            print(f"  500/50 ratio: {flat:.2f} (target: flat, < 64 MiB) {'OK' if ok else 'OVER'}")
        finally:
            registry.terminate()
            registry.wait(timeout=10)


if __name__ == "__main__":
    main()
