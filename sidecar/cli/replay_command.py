"""`event-sidecar check` and `replay`: a rules file validated, a log read once.

Only what building the parser needs is imported here; each command imports its engine in its
handler, so `check` never loads the metrics or the replay engine, and neither command loads
aiohttp, the injection code or the Kubernetes client without `--kubeconfig` (a test holds this).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from sidecar.cli.options import add_options, resolve, settings_from
from sidecar.cli.table import EVENT_OPTIONS
from sidecar.cli.table_offline import CHECK_OPTIONS, REPLAY_OPTIONS
from sidecar.core.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from sidecar.offline.replay import ReplaySettings, WriteRecord


def add_parsers(commands: Any) -> None:
    """Add `check` and `replay` to the sub-commands (`argparse._SubParsersAction`)."""
    check = commands.add_parser("check", help="validate a rules file")
    check.add_argument("rules", metavar="RULES", help="the rules file (YAML)")
    add_options(check, CHECK_OPTIONS, environ=False)
    check.set_defaults(handler=check_command)

    play = commands.add_parser(
        "replay", help="read a log once and print (or write) the Events it stands for"
    )
    play.add_argument("file", metavar="FILE", nargs="?", default="-", help="log file, - for stdin")
    add_options(play, REPLAY_OPTIONS, environ=False)
    play.set_defaults(handler=replay_command)


def check_command(args: argparse.Namespace) -> int:
    """`event-sidecar check`: 0 when the rules are valid, 2 with every problem when not."""
    from sidecar.cli.common import load_rules_or_report  # noqa: PLC0415 - per command
    from sidecar.core.rules.lint import lint_rules  # noqa: PLC0415

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
    from sidecar.offline.replay import ReplaySettings  # noqa: PLC0415 - per command

    values, _ = resolve(EVENT_OPTIONS, args, os.environ, variables=False)
    events = settings_from(EVENT_OPTIONS, values)
    return ReplaySettings(
        component=events.component,
        host=events.host,
        max_line_bytes=events.files.max_line_bytes,
        correlation=events.correlation,
        year=args.year,
        since=getattr(args, "since", None),
        until=getattr(args, "until", None),
        series_finish_seconds=getattr(args, "series_finish", events.series_finish_seconds),
    )


def replay_command(args: argparse.Namespace) -> int:
    """`event-sidecar replay`: 0, 1 when the log or the cluster cannot be read, 2 on bad rules."""
    # The engine is imported here, not at the top, so that `check` and `--help` do not pay for it.
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415

    from sidecar.cli.common import (  # noqa: PLC0415
        chosen_events_api,
        connect_or_report,
        load_rules_or_report,
    )
    from sidecar.core.events.eventsv1 import as_core_view  # noqa: PLC0415
    from sidecar.core.events.output import format_json_lines, format_table  # noqa: PLC0415
    from sidecar.offline.replay import read_chunks, replay  # noqa: PLC0415
    from sidecar.runtime.exposition import show_created_series  # noqa: PLC0415
    from sidecar.runtime.metrics import Metrics  # noqa: PLC0415
    from sidecar.runtime.sinks import MemorySink, Sink  # noqa: PLC0415

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
        connected = connect_or_report(args.kubeconfig, args.context, metrics)
        if connected is None:
            return EXIT_FAILURE
        sink = connected
        # Named after their lines as in `run`: a second replay of the log finds them written.
        line_names = True
    events_api, why = chosen_events_api(args.events_api, sink)
    if args.events_api == "auto":
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


def format_writes(writes: Iterable[WriteRecord]) -> str:
    """`replay -o writes`: one JSON object per create or PATCH, in order, keys sorted. A core/v1
    Event is summed up (its count and message); an events.k8s.io/v1 one is given whole, as
    stored after the write (`body`: its series, note, regarding, ...)."""
    return "".join(
        orjson.dumps(_write_row(write), option=orjson.OPT_SORT_KEYS).decode() + "\n"
        for write in writes
    )


def _write_row(write: WriteRecord) -> dict[str, Any]:
    from sidecar.core.events.eventsv1 import ModernEvent  # noqa: PLC0415 - per command

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
