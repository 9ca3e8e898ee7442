"""The `kubesim-images` command line: the edge where user input is validated and errors become
clear messages and exit codes, never tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from kubesim_images import __version__, imagecli
from kubesim_images.errors import ConfigError
from kubesim_images.keyring import Keyring, load_docker_config
from kubesim_images.logging import configure, get_logger
from kubesim_images.policy import PullPolicy

EXIT_OK = 0
EXIT_INVALID = 2


def _logging_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    parser.add_argument(
        "--log-format",
        choices=("json", "console"),
        default="json" if defaults else argparse.SUPPRESS,
        help="log lines on stderr: JSON (default) or console for people",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=None if defaults else argparse.SUPPRESS,
        help="warning by default; info for serve",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubesim-images",
        description="Simulate the Kubernetes kubelet's image manager.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _logging_options(parser, defaults=True)
    # Accepted after the command too (`serve --log-format console`), where people type them.
    logging_options = argparse.ArgumentParser(add_help=False)
    _logging_options(logging_options, defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ex = commands.add_parser(
        "explain",
        parents=[logging_options],
        help="show how the kubelet reads image references",
        description="Show how the kubelet parses, normalises and decides on image references. "
        "Use -- before images that start with '-'.",
    )
    ex.add_argument("images", nargs="+", metavar="IMAGE")
    ex.add_argument("-o", "--output", choices=("json", "text"), default="text")
    ex.add_argument(
        "--pull-policy",
        choices=[p.value for p in PullPolicy],
        help="the container's imagePullPolicy (default: as the API server defaults it)",
    )
    ex.add_argument(
        "--present", action="store_true", help="assume the image is already on the node"
    )
    ex.add_argument(
        "--docker-config",
        metavar="FILE",
        help="a docker config.json/.dockercfg whose matching keys are listed",
    )

    sv = commands.add_parser(
        "serve",
        parents=[logging_options],
        help="run the simulated node's daemon (a Kubernetes-shaped API)",
        description="Run one simulated node behind a Kubernetes-shaped API that kubectl "
        "--server and the kubernetes Python client can drive.",
    )
    sv.add_argument("--config", metavar="FILE", help="daemon config (default: embedded)")
    sv.add_argument("--address", default="127.0.0.1", help="address to bind (127.0.0.1)")
    sv.add_argument("--port", type=int, default=10255, help="port to bind (10255; 0 = any)")
    sv.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where state persists (default: $XDG_STATE_HOME/kubesim-images)",
    )
    sv.add_argument(
        "--token-file",
        metavar="FILE",
        help="require 'Authorization: Bearer <token>' with the token in FILE",
    )
    sv.add_argument(
        "--tls-cert-file",
        metavar="FILE",
        help="serve HTTPS with this certificate (PEM); kubectl sends --token only over HTTPS",
    )
    sv.add_argument("--tls-private-key-file", metavar="FILE", help="its private key (PEM)")
    sv.add_argument(
        "--insecure-bind",
        action="store_true",
        help="allow a non-loopback --address without --token-file (logged as a warning)",
    )

    cat = commands.add_parser(
        "catalogue",
        parents=[logging_options],
        help="list the images the daemon's simulated registry serves",
        description="List the images, tags, sizes and layers of the simulated registry a "
        "daemon config describes (default: the embedded one `serve` uses). Private images "
        "say auth: yes; their credentials are never printed.",
    )
    cat.add_argument("--config", metavar="FILE", help="daemon config (default: embedded)")
    cat.add_argument("-o", "--output", choices=("table", "json"), default="table")

    sc = commands.add_parser("scenario", help="run load-testing scenarios in virtual time")
    sc_commands = sc.add_subparsers(dest="scenario_command", required=True, metavar="COMMAND")
    run = sc_commands.add_parser("run", help="run a scenario file", parents=[logging_options])
    run.add_argument("file", metavar="FILE")
    run.add_argument("-o", "--output", choices=("table", "json"), default="table")
    run.add_argument("--variant", metavar="NAME", help="run only this variant")
    run.add_argument(
        "--report", metavar="DIR", help="also write report.json and plots (PNG) into DIR"
    )
    run.add_argument(
        "--real-time",
        action="store_true",
        help="run on the wall clock (needed by registry type oci: real pulls)",
    )
    run.add_argument(
        "--compare",
        action="store_true",
        help="with --real-time: also run the same file in virtual time and report the two side "
        "by side (a real registry's images are resolved once to give the model its catalogue)",
    )
    fp = commands.add_parser(
        "fault-proxy",
        parents=[logging_options],
        help="a reverse proxy in front of a registry that injects faults from a rules file",
        description="Forward registry traffic to --upstream and inject the faults the rules "
        "file describes (5xx, 429 + Retry-After, reset, truncated or corrupt bodies, slow "
        "bodies, refused connections); one fault_injected log line per fault.",
    )
    fp.add_argument("--upstream", required=True, metavar="URL", help="e.g. http://127.0.0.1:5000")
    fp.add_argument("--faults", required=True, metavar="FILE", help="the rules (YAML)")
    fp.add_argument(
        "--listen", default="127.0.0.1:5001", metavar="HOST:PORT", help="(127.0.0.1:5001)"
    )
    imagecli.add_parsers(commands, [logging_options])
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_INVALID


def _explain(args: argparse.Namespace) -> int:
    from kubesim_images.explain import explain, render_text  # noqa: PLC0415 - explain only

    keyring = None
    if args.docker_config:
        try:
            keyring = Keyring(load_docker_config(args.docker_config))
        except ConfigError as exc:
            return _fail(str(exc))
    policy = PullPolicy(args.pull_policy) if args.pull_policy else None
    results = explain(args.images, pull_policy=policy, present=args.present, keyring=keyring)
    if args.output == "json":
        print(json.dumps(results, indent=2))
    else:
        print(render_text(results))
    return EXIT_OK


def _terminal(stream: TextIO) -> bool:
    """Whether rich's console would take `stream` for a terminal (its `is_terminal`: the
    TTY_COMPATIBLE and FORCE_COLOR settings, else isatty), without importing rich."""
    tty_compatible = os.environ.get("TTY_COMPATIBLE", "")
    if tty_compatible in {"0", "1"}:
        return tty_compatible == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    try:
        return stream.isatty()
    except ValueError:  # a closed stream
        return False


def _scenario_run(args: argparse.Namespace, left: list[object] | None = None) -> int:
    """`left`: where the result is left when the run is done, for `run` to exit without
    freeing it."""
    from kubesim_images.scenario.model import load_file  # noqa: PLC0415 - keeps explain fast
    from kubesim_images.scenario.nogc import no_cyclic_gc  # noqa: PLC0415
    from kubesim_images.scenario.report import render_table, to_json, write_json  # noqa: PLC0415
    from kubesim_images.scenario.runner import run_scenario  # noqa: PLC0415

    try:
        # The pods parsed (a million at 100,000 nodes) live as long as the process: the
        # collector would otherwise scan them all at its next pass.
        with no_cyclic_gc(freeze=True):
            scenario = load_file(args.file)
    except ConfigError as exc:
        return _fail(str(exc))
    if args.variant and args.variant not in {v.name for v in scenario.variants}:
        names = ", ".join(v.name for v in scenario.variants)
        return _fail(f"{args.file}: no variant named {args.variant!r} (variants: {names})")
    needs_real_time = [v.name for v in scenario.variants if v.oci is not None]
    if needs_real_time and not args.real_time:
        return _fail(
            f"{args.file}: registry type oci pulls real images (variants: "
            f"{', '.join(needs_real_time)}): run it with --real-time"
        )
    if args.compare and not args.real_time:
        return _fail("--compare puts a virtual run beside a real-time one: add --real-time")
    if args.output == "json" and not args.report and not _terminal(sys.stderr):
        # rich draws its status only on a terminal: without one there is nothing to show,
        # and a run that prints only JSON starts without rich.
        result = run_scenario(
            scenario, variant=args.variant, real_time=args.real_time, compare=args.compare
        )
        write_json(result, sys.stdout.buffer)
        sys.stdout.flush()
        if left is not None:
            left.append(result)
        return EXIT_OK
    from rich.console import Console  # noqa: PLC0415 - the image verbs start without rich

    console = Console(stderr=True) if args.output == "json" else Console()
    with console.status(f"simulating {scenario.name}…"):
        result = run_scenario(
            scenario, variant=args.variant, real_time=args.real_time, compare=args.compare
        )
    if args.report:
        from kubesim_images.scenario.plots import write_report  # noqa: PLC0415

        written = write_report(result, to_json(result), Path(args.report))
        console.print(f"report written: {', '.join(str(p) for p in written)}")
    if args.output == "json":
        # Streamed through orjson a chunk at a time: the same text as json.dumps(indent=2)
        # (ASCII documents) at a fraction of the time, and never the whole document in memory.
        write_json(result, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        render_table(result, console)
    if left is not None:
        left.append(result)
    return EXIT_OK


def _catalogue(args: argparse.Namespace) -> int:
    from kubesim_images.daemon.config import load_config  # noqa: PLC0415 - server deps
    from kubesim_images.registry.listing import catalogue_rows, render_table  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    rows = catalogue_rows(config.registry.catalogue)
    if args.output == "json":
        print(json.dumps({"images": rows}, indent=2))
    else:
        print(render_table(rows))
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 - a scenario run's start need not load it (nor ssl)
    import ssl  # noqa: PLC0415

    from kubesim_images.daemon import exposure  # noqa: PLC0415 - server deps
    from kubesim_images.daemon.config import load_config  # noqa: PLC0415
    from kubesim_images.daemon.server import Daemon  # noqa: PLC0415
    from kubesim_images.state import StateDirInUse, default_state_dir  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            return _fail(f"{args.token_file}: cannot read token file: {exc.strerror}")
        if not token:
            return _fail(f"{args.token_file}: the token file is empty")
    if not 0 <= args.port <= 65535:
        return _fail(f"--port {args.port}: must be between 0 and 65535")
    tls = None
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        return _fail("--tls-cert-file and --tls-private-key-file go together")
    if args.tls_cert_file:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(args.tls_cert_file, args.tls_private_key_file)
        except (OSError, ssl.SSLError) as exc:
            return _fail(f"cannot load the TLS certificate and key: {exc}")
    refusal = exposure.refusal(args.address) if token is None else None
    if refusal is not None and not args.insecure_bind:
        return _fail(refusal)
    log = get_logger()
    if refusal is not None:
        log.warning("insecure_bind", address=args.address, detail=refusal)
    if token is not None and tls is None:
        log.warning("token_without_tls", detail=exposure.PLAIN_HTTP_WARNING)
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    daemon = Daemon(config, state_dir, address=args.address, port=args.port, token=token, tls=tls)
    try:
        asyncio.run(daemon.run_until_signalled())
    except StateDirInUse as exc:
        return _fail(
            f"{exc}; a second daemon needs its own --state-dir DIR (`make run STATE_DIR=DIR`)"
        )
    except TimeoutError:  # an OSError subclass: a drain that overran, not a bind failure
        return _fail("stopping took too long: the drain did not finish in time")
    except OSError as exc:
        message = f"cannot serve on {args.address}:{args.port}: {exc.strerror or exc}"
        if exc.errno == errno.EADDRINUSE:  # most likely another daemon: say how to move over
            message += "; choose another port with --port N (`make run PORT=N`; 0 picks a free one)"
        return _fail(message)
    return EXIT_OK


def _fault_proxy(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 - see _serve

    from kubesim_images.faultproxy.rules import load_rules  # noqa: PLC0415 - aiohttp
    from kubesim_images.faultproxy.server import FaultProxy, serve  # noqa: PLC0415

    if not args.upstream.startswith(("http://", "https://")):
        return _fail(f"--upstream {args.upstream}: must be an http:// or https:// URL")
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return _fail(f"--listen {args.listen}: must be HOST:PORT")
    try:
        rules = load_rules(args.faults)
    except ConfigError as exc:
        return _fail(str(exc))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - inside asyncio.run
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        proxy = FaultProxy(args.upstream, rules, host.strip("[]"), int(port))
        with contextlib.suppress(asyncio.CancelledError):
            await serve(proxy)

    try:
        asyncio.run(run())
    except OSError as exc:
        return _fail(f"cannot listen on {args.listen}: {exc.strerror or exc}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, left: list[object] | None = None) -> int:
    """The command line's exit code; `left` receives what a scenario run built, or the store a
    pull leaves open, for the process's end (see `run`)."""
    args = _parser().parse_args(argv)
    # A daemon reports what it does by default; the one-shot commands only what goes wrong.
    level = args.log_level or ("info" if args.command in {"serve", "fault-proxy"} else "warning")
    configure(log_format=args.log_format, level=level)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "scenario":
            return _scenario_run(args, left)
        if args.command == "catalogue":
            return _catalogue(args)
        if args.command == "fault-proxy":
            return _fault_proxy(args)
        if args.command == "pull":
            return imagecli.pull(args, left)
        if args.command in {"images", "rmi", "inspecti"}:
            verb: Callable[[argparse.Namespace], int] = getattr(imagecli, args.command)
            return verb(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kubesim-images catalogue | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return _fail(f"unknown command {args.command}")  # pragma: no cover - argparse refuses first


def run() -> NoReturn:
    """The console script and `python -m kubesim_images`: `main`, then exit. What a scenario
    run built (tens of millions of objects at 100,000 nodes) is never torn down, work only for
    the operating system to reclaim the memory anyway (0.4 s of CPU at 100,000 nodes), and a
    pull's store is not closed (`imagecli.pull`): the command leaves it in `left`, and the
    process ends at once, its output flushed, without the interpreter's teardown (neither
    command leaves an exit handler with work to do). Other commands' leftovers are frozen,
    and the interpreter's last collection skips them."""
    left: list[object] = []
    code = main(left=left)
    if left:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
