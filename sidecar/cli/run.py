"""`event-sidecar run`: the process around `Daemon` (the options are in `sidecar.cli.table`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from sidecar.addresses import AddressError
from sidecar.cli.common import load_rules_or_report
from sidecar.cli.options import add_options, resolve, settings_from
from sidecar.cli.table import RUN_OPTIONS
from sidecar.exits import EXIT_FAILURE, EXIT_USAGE
from sidecar.exposition import show_created_series
from sidecar.heap import freeze_startup_objects
from sidecar.logs import configure_logging
from sidecar.metrics import Metrics
from sidecar.settings import DaemonSettings
from sidecar.sinks import MemorySink, Sink
from sidecar.sources.sockets import parse_address


def add_parser(commands: Any) -> None:
    """Add `run` to the sub-commands (`argparse._SubParsersAction`)."""
    run: argparse.ArgumentParser = commands.add_parser(
        "run",
        help="the sidecar daemon: follow logs, write Events, serve /metrics /healthz /readyz",
        epilog="Every option can also be set as SIDECAR_<OPTION> in the environment "
        "(e.g. SIDECAR_FILE=/logs/*.log, SIDECAR_KUBECONFIG=; lists comma-separated, "
        "booleans true or false); a flag wins over its variable, a repeated flag over the "
        "whole list.",
    )
    add_options(run, RUN_OPTIONS, environ=True)
    run.set_defaults(handler=run_command)


def daemon_settings(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[dict[str, Any], DaemonSettings, list[str]]:
    """`run`'s option values, the daemon's settings, and the variables that are wrong."""
    values, problems = resolve(RUN_OPTIONS, args, environ)
    return values, settings_from(RUN_OPTIONS, values), problems


def run_command(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """`event-sidecar run`: 0 after a clean SIGTERM, 1 on a failure, 2 on bad usage."""
    values, settings, problems = daemon_settings(args, os.environ if environ is None else environ)
    configure_logging(values["log_level"])
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return EXIT_USAGE
    if not values["rules"]:
        print("error: --rules (or SIDECAR_RULES) is required", file=sys.stderr)
        return EXIT_USAGE
    rules = load_rules_or_report(values["rules"])
    if rules is None:
        return EXIT_USAGE
    if not (settings.files.paths or settings.sockets.tcp or settings.sockets.unix):
        print(
            "error: no sources: give --file, --tcp or --unix (or their SIDECAR_ variables)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        for address in settings.sockets.tcp:
            parse_address(address, allow_remote=settings.sockets.allow_remote)
    except AddressError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    show_created_series(settings.http.created_series)
    metrics = Metrics(CollectorRegistry(), max_state_values=settings.transitions.max_state_values)
    try:
        sink = _sink(values, metrics)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    from sidecar.daemon import Daemon  # noqa: PLC0415 - keeps `check` and `replay` light

    async def main() -> int:
        """The daemon needs a running loop (its queues and tasks belong to it)."""
        # A dry run has nothing to reach; a real sink's ping keeps /readyz current.
        ping = None if values["dry_run"] else sink.ping
        daemon = Daemon(rules, sink, settings, metrics, ping=ping, rules_path=values["rules"])
        return await daemon.run(install_signals=True)

    freeze_startup_objects()
    return asyncio.run(main())


def _sink(values: Mapping[str, Any], metrics: Metrics) -> Sink:
    """The Kubernetes sink; or memory for `--dry-run`.

    Raises:
        RuntimeError: no usable Kubernetes configuration (the message says what was tried).
    """
    if values["dry_run"]:
        return MemorySink()
    from sidecar import kube  # noqa: PLC0415 - only a real run pays for the client

    try:
        sink = kube.connect(
            kubeconfig=values["kubeconfig"] or None, context=values["context"], metrics=metrics
        )
    except kube.KubeConfigError as error:
        raise RuntimeError(str(error)) from error
    return sink
