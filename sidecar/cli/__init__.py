"""The `event-sidecar` command line: arguments in, an exit code out (`sidecar.core.exits`).

One module per group of commands (`replay_command`: check and replay; `explain_command`;
`rulestests_command`: test; `suggest_command`; `run_command`; `inject_command`: webhook and
inject), the options of every command in one table (`table`) from which the parsers and `run`'s
settings are derived (`options`). Commands import their engines; nothing below imports from here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sidecar import __version__
from sidecar.cli import (
    explain_command,
    inject_command,
    replay_command,
    rulestests_command,
    run_command,
    suggest_command,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `event-sidecar` command; argparse exits 2 itself on a malformed command line."""
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; building it reads nothing from the environment."""
    parser = argparse.ArgumentParser(
        prog="event-sidecar",
        description="Turn a controller's log lines into Kubernetes Events and Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    replay_command.add_parsers(commands)
    explain_command.add_parser(commands)
    rulestests_command.add_parser(commands)
    suggest_command.add_parser(commands)
    inject_command.add_parsers(commands)
    run_command.add_parser(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
