"""`event-sidecar suggest`: a first rules file drafted from a log (`sidecar.offline.suggest`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sidecar.cli.options import add_options
from sidecar.cli.table_offline import SUGGEST_OPTIONS
from sidecar.core.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE


def add_parser(commands: Any) -> None:
    """Add `suggest` to the sub-commands (`argparse._SubParsersAction`)."""
    parser = commands.add_parser(
        "suggest",
        help="read a log and print a commented draft rules file for it",
        description="Read a log and print a commented draft rules file: the values that behave "
        "like per-object state (a transition whose failure-like states are Warnings) and the "
        "warning and error lines that repeat. Read it, then `check` and `replay` it.",
    )
    parser.add_argument("log", metavar="LOG", help="the controller's log file")
    add_options(parser, SUGGEST_OPTIONS, environ=False)
    parser.set_defaults(handler=suggest_command)


def suggest_command(args: argparse.Namespace) -> int:
    """0 with a draft, 1 when no line of the log names an object, 2 on a usage error."""
    if args.tests and not args.output:
        print("error: --tests needs --output: the tests file names its rules file", file=sys.stderr)
        return EXIT_USAGE
    # Imported here: building the parser, which every command does, must not load the engine.
    from sidecar.offline.suggest import suggest, tests_file  # noqa: PLC0415

    log = Path(args.log)
    try:
        draft = suggest(log, component=args.component, year=args.year)
    except OSError as error:
        print(f"error: cannot read {log}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if draft is None:
        print(
            f"{log}: no line names an object (a reference, a field named after a kind, "
            "controller-runtime's controllerKind, Kind(namespace/name) in the message), so no "
            "rule can address an Event; see README, Rules, to write one by hand",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if args.output is None:
        sys.stdout.write(draft.text)
        return EXIT_OK
    rules_path = Path(args.output)
    rules_path.write_text(draft.text, encoding="utf-8")
    print(f"wrote {len(draft.rules)} rules to {rules_path}", file=sys.stderr)
    if args.tests:
        tests_path = Path(args.tests)
        tests_path.write_text(
            tests_file(
                draft, rules_path=rules_path, tests_path=tests_path, log_path=log, year=args.year
            ),
            encoding="utf-8",
        )
        print(f"wrote {len(draft.rules) + 1} tests to {tests_path}", file=sys.stderr)
    return EXIT_OK
