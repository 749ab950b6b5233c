"""`event-sidecar test`: run rule tests files (`sidecar.offline.rulestests`), promtool-style."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sidecar.core.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE


def add_parser(commands: Any) -> None:
    """Add `test` to the sub-commands (`argparse._SubParsersAction`)."""
    parser = commands.add_parser(
        "test", help="run rule tests: log lines in, the expected Events and counters out"
    )
    parser.add_argument(
        "files", metavar="RULES_TESTS", nargs="+", help="tests files (YAML) naming their rules"
    )
    parser.set_defaults(handler=test_command)


def test_command(args: argparse.Namespace) -> int:
    """0 when every test passes, 1 when one fails (with its diff), 2 when a file is invalid."""
    # Imported here: building the parser, which every command does, must not load the engine.
    from sidecar.offline.rulestests import TestsFileError, run_tests  # noqa: PLC0415

    failed = passed = 0
    invalid = False
    for name in args.files:
        try:
            results = run_tests(Path(name))
        except TestsFileError as error:
            print(f"error: {error}", file=sys.stderr)
            invalid = True
            continue
        for result in results:
            if result.passed:
                passed += 1
                print(f"PASS {name}: {result.name}")
            else:
                failed += 1
                print(f"FAIL {name}: {result.name}")
                for line in result.diff:
                    print(f"  {line}")
    print(f"{passed} passed, {failed} failed")
    if invalid:
        return EXIT_USAGE
    return EXIT_FAILURE if failed else EXIT_OK
