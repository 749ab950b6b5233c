"""The `event-sidecar` command line: argument parsing and exit codes, nothing else.

Exit codes: 0 success, 1 a runtime failure (file unreadable, cluster unreachable), 2 bad usage or
an invalid rules file (so CI can tell "your rules are wrong" from "something broke").
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import orjson
from prometheus_client import CollectorRegistry, generate_latest

from sidecar import __version__
from sidecar.correlate import CorrelatorSettings
from sidecar.events import EventNamer
from sidecar.inject.commands import add_commands as add_injection_commands
from sidecar.metrics import Metrics
from sidecar.output import format_json_lines, format_table
from sidecar.replay import ReplayResult, ReplaySettings, read_chunks, replay
from sidecar.rules import RulesError, RuleSet, load_rules
from sidecar.rules.lint import lint_rules
from sidecar.scan import DEFAULT_MAX_LINE_BYTES
from sidecar.sinks import MemorySink, Sink

EXIT_FAILURE = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="event-sidecar",
        description="Turn a controller's log lines into Kubernetes Events and Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate a rules file")
    check.add_argument("rules", metavar="RULES", help="the rules file (YAML)")
    check.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) on warnings too, not only on errors",
    )
    check.set_defaults(handler=_check)

    play = commands.add_parser(
        "replay", help="read a log once and print (or write) the Events it stands for"
    )
    play.add_argument("file", metavar="FILE", nargs="?", default="-", help="log file, - for stdin")
    play.add_argument("--rules", required=True, help="the rules file (YAML)")
    play.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "none"),
        default="table",
        help="how to print the Events: a kubectl-like table, JSON lines, or not at all",
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
        "or $KUBECONFIG)",
    )
    play.add_argument("--context", help="kubeconfig context to use")
    play.add_argument(
        "--year",
        type=int,
        default=datetime.now(UTC).year,
        help="the year of klog's timestamps, which carry none (default: this year)",
    )
    _add_event_options(play)
    play.set_defaults(handler=_replay)

    add_injection_commands(commands)

    from sidecar.run import add_run_parser  # noqa: PLC0415 - run.py imports from here

    add_run_parser(commands)
    return parser


def positive_int(text: str) -> int:
    """An argparse type: a whole number above zero (queue sizes, bursts, limits)."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not above zero")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above zero (intervals, windows)."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number above zero")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number of seconds, zero allowed (waits, deadlines)."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of at least zero")
    return value


def _add_event_options(parser: argparse.ArgumentParser) -> None:
    defaults = CorrelatorSettings()
    parser.add_argument("--component", help="source.component (default: the rules file's)")
    parser.add_argument(
        "--host",
        default=os.environ.get("POD_NAME") or socket.gethostname(),
        help="source.host and reportingInstance (default: $POD_NAME, else the host name)",
    )
    parser.add_argument("--max-line-bytes", type=positive_int, default=DEFAULT_MAX_LINE_BYTES)
    parser.add_argument(
        "--aggregate-max",
        type=positive_int,
        default=defaults.max_similar_events,
        help="distinct messages per object and reason before aggregating (client-go: 10)",
    )
    parser.add_argument(
        "--aggregate-window",
        type=positive_float,
        default=defaults.similar_window_seconds,
        help="seconds of the aggregation window (client-go: 600)",
    )
    parser.add_argument(
        "--spam-burst",
        type=positive_int,
        default=defaults.spam_burst,
        help="Events per object at once before the spam filter drops (client-go: 25)",
    )
    parser.add_argument(
        "--spam-refill-seconds",
        type=positive_float,
        default=defaults.spam_refill_seconds,
        help="seconds to earn one more Event after the burst (client-go: 300)",
    )
    parser.add_argument(
        "--spam-key-by-reason",
        action="store_true",
        help="give each reason its own spam bucket (client-go shares one per object and type)",
    )


def _correlation(args: argparse.Namespace) -> CorrelatorSettings:
    return CorrelatorSettings(
        max_similar_events=args.aggregate_max,
        similar_window_seconds=args.aggregate_window,
        spam_burst=args.spam_burst,
        spam_refill_seconds=args.spam_refill_seconds,
        spam_key_by_reason=args.spam_key_by_reason,
    )


def _load(path: str, err: TextIO) -> RuleSet | None:
    try:
        return load_rules(path)
    except RulesError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=err)
        return None


def _check(args: argparse.Namespace) -> int:
    rules = _load(args.rules, sys.stderr)
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
    return 0


def _replay(args: argparse.Namespace) -> int:
    rules = _load(args.rules, sys.stderr)
    if rules is None:
        return EXIT_USAGE
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    memory = MemorySink()
    sink: Sink = memory
    namer = None
    if args.kubeconfig is not None:
        from sidecar import kube  # noqa: PLC0415 - only replay to a cluster pays for the client

        try:
            sink = kube.connect(
                kubeconfig=args.kubeconfig or None, context=args.context, metrics=metrics
            )
        except kube.KubeConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILURE
        namer = EventNamer()  # wall clock: replaying a log twice must not collide
    settings = ReplaySettings(
        component=args.component,
        host=args.host,
        max_line_bytes=args.max_line_bytes,
        correlation=_correlation(args),
        year=args.year,
    )
    try:
        with _open_input(args.file) as stream:
            result = replay(
                read_chunks(stream), rules, sink, metrics, settings=settings, namer=namer
            )
    except OSError as error:
        print(f"error: cannot read {args.file}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if sink is memory and args.output != "none":
        if args.output == "json":
            sys.stdout.write(format_json_lines(memory.events.values()))
        elif memory.events:
            print(format_table(memory.events.values(), result.end_time))
        else:
            print("No events.")
    if args.metrics:
        sys.stdout.write(generate_latest(registry).decode())
    summary = _summary_fields(result)
    if args.summary == "json":
        print(orjson.dumps(summary).decode(), file=sys.stderr)
    else:
        print(_format_summary(summary), file=sys.stderr)
    return 0


def _open_input(path: str) -> BinaryIO:
    """The log to read: a file, or standard input for `-` (left open when the block ends)."""
    if path == "-":
        return os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    return open(path, "rb")  # noqa: PTH123 - closed by the caller's with-block


def _summary_fields(result: ReplayResult) -> dict[str, Any]:
    counts = result.counts
    written = {k: v for k, v in result.outcomes.items() if k in ("create", "patch")}
    return {
        "lines_read": counts.read,
        "bytes_read": counts.bytes,
        "skipped": counts.skipped,
        "decoded": counts.decoded,
        "undecodable": dict(sorted(counts.undecodable.items())),
        "too_long": counts.too_long,
        "matched": counts.matched,
        "unchanged": counts.unchanged,
        "rule_misses": counts.missed,
        "events": counts.specs,
        "created": written.get("create", 0),
        "patched": written.get("patch", 0),
        "dropped": {k: v for k, v in sorted(result.outcomes.items()) if k not in written},
    }


def _format_summary(summary: dict[str, Any]) -> str:
    undecodable = summary["undecodable"]
    detail = ", ".join(f"{n} {why}" for why, n in undecodable.items())
    dropped = summary["dropped"]
    return "\n".join(
        [
            f"lines read: {summary['lines_read']}",
            f"skipped by pre-filter: {summary['skipped']}",
            f"decoded: {summary['decoded']}",
            f"undecodable: {sum(undecodable.values())}" + (f" ({detail})" if detail else ""),
            f"too long: {summary['too_long']}",
            f"matched: {summary['matched']}",
            f"unchanged: {summary['unchanged']}",
            f"rule misses: {summary['rule_misses']}",
            f"events: {summary['created'] + summary['patched']} "
            f"({summary['created']} created, {summary['patched']} patched)",
            "dropped: "
            + (", ".join(f"{n} {cause}" for cause, n in dropped.items()) if dropped else "0"),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
