"""`event-sidecar run`: its flags, their environment variables, and the process around `Daemon`.

Every option can also come from the environment as `SIDECAR_<OPTION>` (upper case, dashes as
underscores; lists comma-separated), because a sidecar is configured in a pod spec, where env
entries are easier to patch (kustomize, the injector) than an argument list. A flag wins over
its variable. The instance name defaults to `$POD_NAME` (the downward API).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from prometheus_client import CollectorRegistry

from sidecar.cli import (
    EXIT_FAILURE,
    EXIT_USAGE,
    _add_event_options,
    _correlation,
    _load,
    non_negative_float,
    positive_float,
    positive_int,
)
from sidecar.heap import freeze_startup_objects
from sidecar.logs import configure_logging
from sidecar.metrics import Metrics
from sidecar.settings import (
    CheckpointSettings,
    DaemonSettings,
    FileSettings,
    HttpSettings,
    QueueSettings,
    SocketSettings,
)
from sidecar.sinks import MemorySink, Sink
from sidecar.sources.sockets import AddressError, parse_address

ENV_PREFIX = "SIDECAR_"


def add_run_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `run` to the `event-sidecar` sub-commands."""
    files, checkpoint, sockets = FileSettings(), CheckpointSettings(), SocketSettings()
    queues, http = QueueSettings(), HttpSettings()
    run: argparse.ArgumentParser = commands.add_parser(
        "run",
        help="the sidecar daemon: follow logs, write Events, serve /metrics /healthz /readyz",
        epilog="Every option can also be set as SIDECAR_<OPTION> in the environment "
        "(e.g. SIDECAR_FILE=/logs/*.log, SIDECAR_KUBECONFIG=; lists comma-separated); "
        "a flag wins over its variable.",
    )
    run.add_argument("--rules", help="the rules file (YAML)")
    run.add_argument(
        "--file", action="append", default=[], help="log file path or glob (repeatable)"
    )
    run.add_argument(
        "--start",
        choices=("checkpoint", "end", "beginning"),
        default=files.start,
        help="where files are first read from (default: resume from the checkpoint, else "
        "from the beginning)",
    )
    run.add_argument("--watch", choices=("auto", "inotify", "poll"), default=files.watch)
    run.add_argument(
        "--poll-interval", type=positive_float, default=files.poll_interval, help="seconds"
    )
    run.add_argument(
        "--rotate-wait", type=non_negative_float, default=files.rotate_wait, help="seconds"
    )
    run.add_argument(
        "--checkpoint", help="checkpoint file (default: next to the first --file, on its volume)"
    )
    run.add_argument(
        "--checkpoint-interval", type=positive_float, default=checkpoint.interval, help="seconds"
    )
    run.add_argument(
        "--tcp", action="append", default=[], help="listen for log lines on host:port (TCP)"
    )
    run.add_argument(
        "--unix", action="append", default=[], help="listen for log lines on this Unix socket"
    )
    run.add_argument(
        "--socket-allow-remote",
        action="store_true",
        help="allow --tcp on addresses other than loopback",
    )
    run.add_argument("--max-connections", type=positive_int, default=sockets.max_connections)
    run.add_argument(
        "--idle-timeout", type=positive_float, default=sockets.idle_timeout, help="seconds"
    )
    run.add_argument("--queue-size", type=positive_int, default=queues.events, help="queued Events")
    run.add_argument(
        "--drain-seconds",
        type=non_negative_float,
        default=queues.drain_deadline,
        help="on SIGTERM, seconds to write queued Events",
    )
    run.add_argument(
        "--listen",
        default=f"{http.host}:{http.port}",
        help="host:port of /metrics, /healthz and /readyz",
    )
    run.add_argument(
        "--kubeconfig",
        help="kubeconfig to use ('' or unset: in-cluster, else $KUBECONFIG)",
    )
    run.add_argument("--context", help="kubeconfig context to use")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="keep Events in memory instead of writing them (for trying rules)",
    )
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    _add_event_options(run)
    _apply_environment(run)
    run.set_defaults(handler=run_command)
    return run


def _apply_environment(parser: argparse.ArgumentParser) -> None:
    """Make `SIDECAR_<OPTION>` the default of each option that has such a variable.

    Values are checked when `run` parses its arguments, never while the parser is built (a bad
    variable must not break `check` or `replay`): argparse converts string defaults with the
    option's type, and `_ENV_PROBLEMS` keeps what it cannot check for `run_command` to report.
    """
    defaults: dict[str, Any] = {}
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        name = ENV_PREFIX + action.option_strings[-1].lstrip("-").upper().replace("-", "_")
        if name not in os.environ:
            continue
        text = os.environ[name]
        if isinstance(action, argparse._AppendAction):
            defaults[action.dest] = [part for part in text.split(",") if part]
        elif isinstance(action, argparse._StoreTrueAction):
            flag = _BOOLEANS.get(text.strip().lower())
            if flag is None:
                _ENV_PROBLEMS.append(f"{name}={text!r} is not a boolean (true or false)")
            defaults[action.dest] = bool(flag)
        elif action.choices is not None and text not in action.choices:
            choices = ", ".join(map(str, action.choices))
            _ENV_PROBLEMS.append(f"{name}={text!r} is not one of {choices}")
        else:
            defaults[action.dest] = text  # converted with action.type when `run` is parsed
    parser.set_defaults(**defaults)


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS.update({"0": False, "false": False, "no": False, "off": False, "": False})
#: Environment variables `run` could not use; reported (exit 2) when `run` is the command.
_ENV_PROBLEMS: list[str] = []


def settings_from(args: argparse.Namespace) -> DaemonSettings:
    """The daemon's settings from parsed arguments.

    Raises:
        AddressError: `--listen` is not host:port.
    """
    host, port = parse_address(args.listen, allow_remote=True)
    return DaemonSettings(
        component=args.component,
        host=args.host,
        files=FileSettings(
            paths=tuple(args.file),
            start=args.start,
            watch=args.watch,
            poll_interval=args.poll_interval,
            rotate_wait=args.rotate_wait,
            max_line_bytes=args.max_line_bytes,
        ),
        checkpoint=CheckpointSettings(path=args.checkpoint, interval=args.checkpoint_interval),
        sockets=SocketSettings(
            tcp=tuple(args.tcp),
            unix=tuple(args.unix),
            allow_remote=args.socket_allow_remote,
            max_connections=args.max_connections,
            idle_timeout=args.idle_timeout,
            max_line_bytes=args.max_line_bytes,
        ),
        queues=QueueSettings(events=args.queue_size, drain_deadline=args.drain_seconds),
        http=HttpSettings(host=host, port=port),
        correlation=_correlation(args),
    )


def run_command(args: argparse.Namespace) -> int:
    """`event-sidecar run`: 0 after a clean SIGTERM, 1 on a failure, 2 on bad usage."""
    configure_logging(args.log_level)
    if _ENV_PROBLEMS:
        for problem in _ENV_PROBLEMS:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if not args.rules:
        print("error: --rules (or SIDECAR_RULES) is required", file=sys.stderr)
        return EXIT_USAGE
    rules = _load(args.rules, sys.stderr)
    if rules is None:
        return EXIT_USAGE
    try:
        settings = settings_from(args)
        for address in settings.sockets.tcp:
            parse_address(address, allow_remote=settings.sockets.allow_remote)
    except AddressError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    metrics = Metrics(CollectorRegistry())
    try:
        sink = _sink(args, metrics)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    from sidecar.daemon import Daemon  # noqa: PLC0415 - keeps `check` and `replay` light

    async def main() -> int:
        """The daemon needs a running loop (its queues and tasks belong to it)."""
        # A dry run has nothing to reach; a real sink's ping keeps /readyz current.
        ping = None if args.dry_run else sink.ping
        daemon = Daemon(rules, sink, settings, metrics, ping=ping)
        return await daemon.run(install_signals=True)

    freeze_startup_objects()
    return asyncio.run(main())


def _sink(args: argparse.Namespace, metrics: Metrics) -> Sink:
    """The Kubernetes sink; or memory for `--dry-run`.

    Raises:
        RuntimeError: no usable Kubernetes configuration (the message says what was tried).
    """
    if args.dry_run:
        return MemorySink()
    from sidecar import kube  # noqa: PLC0415 - only a real run pays for the client

    try:
        sink = kube.connect(
            kubeconfig=args.kubeconfig or None, context=args.context, metrics=metrics
        )
    except kube.KubeConfigError as error:
        raise RuntimeError(str(error)) from error
    return sink
