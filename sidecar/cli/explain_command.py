"""`event-sidecar explain`: each line's way through the pipeline, for a user asking why."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from sidecar.cli.options import add_options
from sidecar.cli.replay_command import open_input, replay_settings
from sidecar.cli.table_offline import EXPLAIN_OPTIONS
from sidecar.core.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE


def add_parser(commands: Any) -> None:
    """Add `explain` to the sub-commands (`argparse._SubParsersAction`)."""
    parser = commands.add_parser(
        "explain",
        help="show, line by line, the record, each rule tried, the transition and the Event",
    )
    parser.add_argument(
        "file", metavar="FILE", nargs="?", default="-", help="log lines, - for stdin"
    )
    add_options(parser, EXPLAIN_OPTIONS, environ=False)
    parser.set_defaults(handler=explain_command)


def explain_command(args: argparse.Namespace) -> int:
    """0 once every line is explained, 1 when the input cannot be read, 2 on bad rules."""
    # Imported here: building the parser, which every command does, must not load the engine.
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from sidecar.cli.common import load_rules_or_report  # noqa: PLC0415
    from sidecar.core.explain import format_text, to_json  # noqa: PLC0415
    from sidecar.offline.replay import explain, read_chunks  # noqa: PLC0415
    from sidecar.runtime.metrics import Metrics  # noqa: PLC0415
    from sidecar.runtime.sinks import MemorySink  # noqa: PLC0415

    rules = load_rules_or_report(args.rules)
    if rules is None:
        return EXIT_USAGE
    settings = replay_settings(args)
    metrics = Metrics(CollectorRegistry())
    try:
        with open_input(args.file) as stream:
            for traced, written in explain(
                read_chunks(stream), rules, MemorySink(), metrics, settings=settings
            ):
                if args.output == "json":
                    sys.stdout.write(
                        orjson.dumps(to_json(traced, written), default=str).decode() + "\n"
                    )
                else:
                    print(format_text(traced, written))
    except OSError as error:
        print(f"error: cannot read {args.file}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
