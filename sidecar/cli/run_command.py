"""`event-sidecar run`: the process around `Daemon` (the options are in `sidecar.cli.table`).

Only what building the parser needs is imported at the top; the daemon, its sources, the metrics
and the sink are imported by `run_command`, so the other commands do not load them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sidecar.cli.options import add_options, resolve, settings_from
from sidecar.cli.table import RUN_OPTIONS
from sidecar.core.exits import EXIT_FAILURE, EXIT_USAGE

if TYPE_CHECKING:
    from sidecar.core.settings import DaemonSettings
    from sidecar.kube.podlogs import PodLogClient
    from sidecar.runtime.metrics import Metrics
    from sidecar.runtime.sinks import Sink

log = logging.getLogger(__name__)

#: Seconds `asyncio.run` may spend after the daemon returned (cancelling what is left, closing the
#: loop) before the process exits anyway: a task that swallows its cancellation must not keep a
#: stopped sidecar alive.
TEARDOWN_SECONDS = 5.0


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
    import asyncio  # noqa: PLC0415 - per command, see the module's docstring

    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from sidecar.cli.common import load_rules_or_report  # noqa: PLC0415
    from sidecar.core.addresses import AddressError  # noqa: PLC0415
    from sidecar.runtime.exposition import show_created_series  # noqa: PLC0415
    from sidecar.runtime.heap import freeze_startup_objects  # noqa: PLC0415
    from sidecar.runtime.metrics import Metrics  # noqa: PLC0415
    from sidecar.runtime.selflog import configure_logging  # noqa: PLC0415
    from sidecar.sources.sockets import parse_address  # noqa: PLC0415

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
    pod_log = settings.pod_log
    if not (
        settings.files.paths or settings.sockets.tcp or settings.sockets.unix or pod_log.container
    ):
        print(
            "error: no sources: give --file, --tcp, --unix or --pod-log "
            "(or their SIDECAR_ variables)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if pod_log.container and settings.files.paths:
        print("error: --file and --pod-log cannot be combined", file=sys.stderr)
        return EXIT_USAGE
    if pod_log.container and not (pod_log.pod and pod_log.namespace):
        print(
            "error: --pod-log needs the pod and its namespace: --pod and --namespace, or "
            "$POD_NAME and $POD_NAMESPACE from the downward API",
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
    sink = _sink(values, metrics, settings.correlation.cache_size)
    if sink is None:
        return EXIT_FAILURE
    settings = _choose_events_api(settings, sink)
    try:
        logs = _pod_logs(values) if pod_log.container else None
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    from sidecar.daemon.service import Daemon  # noqa: PLC0415

    async def main() -> int:
        """The daemon needs a running loop (its queues and tasks belong to it)."""
        # A dry run has nothing to reach; a real sink's ping keeps /readyz current.
        ping = None if values["dry_run"] else sink.ping
        daemon = Daemon(
            rules, sink, settings, metrics, ping=ping, pod_log_api=logs, rules_path=values["rules"]
        )
        try:
            code = await daemon.run(install_signals=True)
        finally:
            if logs is not None:
                await logs.close()
        _exit_after(TEARDOWN_SECONDS, code)
        return code

    freeze_startup_objects()
    return asyncio.run(main())


def _choose_events_api(settings: DaemonSettings, sink: Sink) -> DaemonSettings:
    """Resolve `--events-api auto` against the cluster (a dry run writes core/v1), and log the
    choice; `event_sidecar_events_api_info` shows it."""
    from sidecar.cli.common import chosen_events_api  # noqa: PLC0415 - see the module's docstring

    chosen, why = chosen_events_api(settings.events_api, sink)
    log.info("writing Events to %s", chosen, extra={"events_api": chosen, "why": why})
    return dataclasses.replace(settings, events_api=chosen)


def _exit_after(seconds: float, code: int) -> None:
    """End the process with `code` in `seconds` unless it has ended by then (a daemon thread)."""

    def exit_now() -> None:
        print(f"error: the process did not end {seconds:g} s after the daemon", file=sys.stderr)
        sys.stderr.flush()
        os._exit(code)

    from sidecar.runtime.threads import call_later  # noqa: PLC0415 - see the module's docstring

    call_later(seconds, exit_now, "event-sidecar-exit-watchdog")


def _pod_logs(values: Mapping[str, Any]) -> PodLogClient:
    """The pod log API client, with the sink's configuration; even with `--dry-run` the log has
    to be read from the API.

    Raises:
        RuntimeError: no usable Kubernetes configuration.
    """
    from sidecar import kube  # noqa: PLC0415 - only a real run pays for the client

    try:
        return kube.connect_pod_logs(
            kubeconfig=values["kubeconfig"] or None, context=values["context"]
        )
    except kube.KubeConfigError as error:
        raise RuntimeError(str(error)) from error


def _sink(values: Mapping[str, Any], metrics: Metrics, keep: int) -> Sink | None:
    """The Kubernetes sink; or memory for `--dry-run`, keeping the last `keep` Events only; or
    None after printing what was tried when there is no usable Kubernetes configuration."""
    if values["dry_run"]:
        from sidecar.runtime.sinks import MemorySink  # noqa: PLC0415

        return MemorySink(keep=keep, why="dry run")
    from sidecar.cli.common import connect_or_report  # noqa: PLC0415 - see the module's docstring

    return connect_or_report(values["kubeconfig"], values["context"], metrics)
