"""`event-sidecar check` and `replay`: a rules file validated, a log read once.

Only what building the parser needs is imported here; each command imports its engine in its
handler, so `check` never loads the metrics or the replay engine, and neither command loads
aiohttp, the injection code or the Kubernetes client without `--kubeconfig` (a test holds this).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from sidecar.cli.options import add_options, positive_float, resolve, settings_from
from sidecar.cli.table import EVENT_OPTIONS
from sidecar.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from sidecar.replay import ReplaySettings, WriteRecord


def add_parsers(commands: Any) -> None:
    """Add `check` and `replay` to the sub-commands (`argparse._SubParsersAction`)."""
    check = commands.add_parser("check", help="validate a rules file")
    check.add_argument("rules", metavar="RULES", help="the rules file (YAML)")
    check.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) on warnings too, not only on errors",
    )
    check.set_defaults(handler=check_command)

    play = commands.add_parser(
        "replay", help="read a log once and print (or write) the Events it stands for"
    )
    play.add_argument("file", metavar="FILE", nargs="?", default="-", help="log file, - for stdin")
    play.add_argument("--rules", required=True, help="the rules file (YAML)")
    play.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "writes", "none"),
        default="table",
        help="how to print the Events: a kubectl-like table, JSON lines, every create and "
        "PATCH in order with its line number (JSON lines, for comparing sequences), or not "
        "at all",
    )
    play.add_argument(
        "--since",
        type=parse_moment,
        metavar="TIME",
        help="only lines at or after TIME become Events: RFC 3339 (2026-11-20T09:00:00Z) or a "
        "duration before now (1h, -30m, 2d); earlier lines still set transition state",
    )
    play.add_argument(
        "--until",
        type=parse_moment,
        metavar="TIME",
        help="only lines before TIME become Events (same forms as --since)",
    )
    play.add_argument(
        "--api-version",
        action="append",
        default=[],
        type=_group_version,
        metavar="GROUP/VERSION",
        help="the version to print in involvedObject.apiVersion for a group the rules name "
        "without one (object: auto knows only controllerGroup); repeatable. A cluster's "
        "discovery answers this itself with --kubeconfig",
    )
    play.add_argument(
        "--summary",
        choices=("text", "json"),
        default="text",
        help="the summary on stderr: text for people, one JSON object for scripts",
    )
    play.add_argument("--metrics", action="store_true", help="print the Prometheus metrics too")
    play.add_argument(
        "--kubeconfig",
        help="write the Events to this cluster instead of printing them ('' for in-cluster "
        "or $KUBECONFIG); Events are named after their lines, so replaying a log again does "
        "not double them",
    )
    play.add_argument("--context", help="kubeconfig context to use")
    play.add_argument(
        "--events-api",
        choices=("auto", "events.k8s.io/v1", "v1"),
        default="v1",
        help="which Events to write, as `run --events-api`: events.k8s.io/v1 (with series), "
        "v1 (core), or auto: events.k8s.io/v1 when the cluster (--kubeconfig) serves it and "
        "RBAC allows it, else v1 (v1 without --kubeconfig)",
    )
    play.add_argument(
        "--series-finish",
        type=positive_float,
        default=360.0,
        metavar="SECONDS",
        help="events.k8s.io/v1: as `run --series-finish`, on the log's clock (the heartbeat "
        "runs every SECONDS of log time; every count left is written at the end)",
    )
    play.add_argument(
        "--year",
        type=int,
        help="the year of klog's timestamps, which carry none (default: this year, or last "
        "year for a line whose month is more than a month ahead of the clock)",
    )
    add_options(play, EVENT_OPTIONS, environ=False)
    play.set_defaults(handler=replay_command)


def check_command(args: argparse.Namespace) -> int:
    """`event-sidecar check`: 0 when the rules are valid, 2 with every problem when not."""
    from sidecar.cli.common import load_rules_or_report  # noqa: PLC0415 - per command
    from sidecar.rules.lint import lint_rules  # noqa: PLC0415

    rules = load_rules_or_report(args.rules)
    if rules is None:
        return EXIT_USAGE
    warnings = lint_rules(Path(args.rules).read_text(encoding="utf-8"), args.rules, os.environ)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if warnings and args.strict:
        print(f"{args.rules}: {len(warnings)} warnings (--strict)", file=sys.stderr)
        return EXIT_FAILURE
    print(
        f"{args.rules}: {len(rules.rules)} rules OK (component {rules.component})"
        + (f", {len(warnings)} warnings" if warnings else "")
    )
    return EXIT_OK


def replay_settings(args: argparse.Namespace) -> ReplaySettings:
    """The Event options of `replay` (flags only: the environment is `run`'s)."""
    from sidecar.replay import ReplaySettings  # noqa: PLC0415 - per command

    values, _ = resolve(EVENT_OPTIONS, args, os.environ, variables=False)
    events = settings_from(EVENT_OPTIONS, values)
    return ReplaySettings(
        component=events.component,
        host=events.host,
        max_line_bytes=events.files.max_line_bytes,
        correlation=events.correlation,
        year=getattr(args, "year", None),
        since=getattr(args, "since", None),
        until=getattr(args, "until", None),
        series_finish_seconds=getattr(args, "series_finish", 360.0),
    )


def replay_command(args: argparse.Namespace) -> int:
    """`event-sidecar replay`: 0, 1 when the log or the cluster cannot be read, 2 on bad rules."""
    # The engine is imported here, not at the top, so that `check` and `--help` do not pay for it.
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415

    from sidecar.cli.common import load_rules_or_report  # noqa: PLC0415
    from sidecar.events_v1 import as_core_view  # noqa: PLC0415
    from sidecar.exposition import show_created_series  # noqa: PLC0415
    from sidecar.metrics import Metrics  # noqa: PLC0415
    from sidecar.output import format_json_lines, format_table  # noqa: PLC0415
    from sidecar.replay import read_chunks, replay  # noqa: PLC0415
    from sidecar.sinks import MemorySink, Sink  # noqa: PLC0415

    rules = load_rules_or_report(args.rules)
    if rules is None:
        return EXIT_USAGE
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    settings = replay_settings(args)
    # Printing needs every Event; otherwise only those the correlator may still patch.
    keep = settings.correlation.cache_size if args.output == "none" else None
    memory = MemorySink(dict(args.api_version), keep=keep)
    sink: Sink = memory
    line_names = False
    if args.kubeconfig is not None:
        from sidecar import kube  # noqa: PLC0415 - only replay to a cluster pays for the client

        try:
            sink = kube.connect(
                kubeconfig=args.kubeconfig or None, context=args.context, metrics=metrics
            )
        except kube.KubeConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILURE
        # Named after their lines as in `run`: a second replay of the log finds them written.
        line_names = True
    events_api = args.events_api
    if events_api == "auto":
        choose = getattr(sink, "choose_events_api", None)
        events_api, why = choose() if choose is not None else ("v1", "no cluster")
        print(f"writing Events to {events_api}: {why}", file=sys.stderr)
    settings = dataclasses.replace(settings, events_api=events_api)
    try:
        with open_input(args.file) as stream:
            result = replay(
                read_chunks(stream),
                rules,
                sink,
                metrics,
                settings=settings,
                line_names=line_names,
                keep_writes=args.output == "writes",
            )
    except OSError as error:
        print(f"error: cannot read {args.file}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if sink is memory and args.output != "none":
        stored = (
            [as_core_view(event) for event in memory.modern.values()]
            if events_api == "events.k8s.io/v1"
            else list(memory.events.values())
        )
        if args.output == "json":
            modern = events_api == "events.k8s.io/v1"
            sys.stdout.write(
                format_json_lines(memory.modern.values() if modern else memory.events.values())
            )
        elif args.output == "writes":
            sys.stdout.write(format_writes(result.writes))
        elif stored:
            print(format_table(stored, result.end_time))
        else:
            print("No events.")
    if args.metrics:
        show_created_series(False)  # the same metrics as the daemon's /metrics shows
        sys.stdout.write(generate_latest(registry).decode())
    summary = result.summary()
    if args.summary == "json":
        print(orjson.dumps(summary).decode(), file=sys.stderr)
    else:
        print(_format_summary(summary), file=sys.stderr)
    return EXIT_OK


def parse_moment(text: str, now: float | None = None) -> float:
    """`--since`/`--until`: RFC 3339 (a date alone is its midnight UTC), or a duration before
    `now` such as `1h`, `-30m`, `90s`, `2d` (the sign is optional: it always means before)."""
    duration = _DURATION.fullmatch(text.strip())
    if duration is not None:
        seconds = int(duration[1]) * _UNITS[duration[2]]
        return (time.time() if now is None else now) - seconds
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither RFC 3339 (2026-11-20T09:00:00Z) nor a duration (1h, 30m)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


_DURATION = re.compile(r"-?(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _group_version(text: str) -> tuple[str, str]:
    group, slash, version = text.rpartition("/")
    if not slash or not group or not version:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not GROUP/VERSION (autoscaling.example.com/v1)"
        )
    return group, version


def format_writes(writes: Iterable[WriteRecord]) -> str:
    """`replay -o writes`: one JSON object per create or PATCH, in order, keys sorted. A core/v1
    Event is summed up (its count and message); an events.k8s.io/v1 one is given whole, as
    stored after the write (`body`: its series, note, regarding, ...)."""
    return "".join(
        orjson.dumps(_write_row(write), option=orjson.OPT_SORT_KEYS).decode() + "\n"
        for write in writes
    )


def _write_row(write: WriteRecord) -> dict[str, Any]:
    from sidecar.events_v1 import ModernEvent  # noqa: PLC0415 - per command

    event = write.event
    if isinstance(event, ModernEvent):
        return {"line": write.line, "write": write.write, "body": event.to_body()}
    return {
        "line": write.line,
        "write": write.write,
        "namespace": event.namespace,
        "name": event.name,
        "object": f"{event.involved.kind}/{event.involved.name}",
        "type": event.type,
        "reason": event.reason,
        "count": event.count,
        "message": event.message,
    }


def open_input(path: str) -> BinaryIO:
    """The log to read: a file, or standard input for `-` (left open when the block ends)."""
    if path == "-":
        return os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    return open(path, "rb")  # noqa: PTH123 - closed by the caller's with-block


def _detail(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {why}" for why, n in counts.items())


def _format_summary(summary: dict[str, Any]) -> str:
    undecodable = summary["undecodable"]
    detail = _detail(undecodable)
    dropped = summary["dropped"]
    return "\n".join(
        [
            f"lines read: {summary['lines_read']}",
            f"skipped by pre-filter: {summary['skipped']}",
            f"decoded: {summary['decoded']}",
            f"undecodable: {sum(undecodable.values())}" + (f" ({detail})" if detail else ""),
            *(
                [f"incomplete: {sum(incomplete.values())} ({_detail(incomplete)})"]
                if (incomplete := summary["incomplete"])
                else []
            ),
            f"too long: {summary['too_long']}",
            f"matched: {summary['matched']}",
            f"unchanged: {summary['unchanged']}",
            f"rule misses: {summary['rule_misses']}",
            *(
                [f"outside --since/--until: {summary['outside_window']}"]
                if summary["outside_window"]
                else []
            ),
            f"events: {summary['created'] + summary['patched'] + summary.get('series', 0)} "
            f"({summary['created']} created, {summary['patched']} patched"
            + (f", {summary['series']} counted in series" if "series" in summary else "")
            + ")"
            + (
                f", {summary['already_written']} written before"
                if summary["already_written"]
                else ""
            ),
            "dropped: "
            + (", ".join(f"{n} {cause}" for cause, n in dropped.items()) if dropped else "0"),
        ]
    )
