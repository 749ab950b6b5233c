"""The options of `check`, `replay`, `explain` and `suggest`, one row each.

Flags only: the environment is `run`'s; see `sidecar.cli.table`.
"""

from __future__ import annotations

from typing import Final

from sidecar.cli.options import Option, group_version, parse_moment, positive_float
from sidecar.cli.table import CONTEXT, EVENT_OPTIONS
from sidecar.model import EVENTS_API_CHOICES

#: The rules file `replay` and `explain` read (`run` also reads it from its variable).
_RULES: Final = Option("--rules", "the rules file (YAML)", default=None, required=True)
#: klog's lines carry no year.
_YEAR: Final = Option(
    "--year",
    "the year of klog's timestamps, which carry none (default: this year, or last year for a "
    "line whose month is more than a month ahead of the clock)",
    parse=int,
    default=None,
)

#: `event-sidecar check` (its rules file is an argument).
CHECK_OPTIONS: Final = (
    Option("--strict", "fail (exit 1) on warnings too, not only on errors", kind="switch"),
)

#: `event-sidecar replay` (flags only: the environment is `run`'s).
REPLAY_OPTIONS: Final = (
    _RULES,
    Option(
        "--output",
        "how to print the Events: a kubectl-like table, JSON lines, every create and PATCH in "
        "order with its line number (JSON lines, for comparing sequences), or not at all",
        short="-o",
        choices=("table", "json", "writes", "none"),
        default="table",
        show=None,
    ),
    Option(
        "--since",
        "only lines at or after TIME become Events: RFC 3339 (2026-11-20T09:00:00Z) or a "
        "duration before now (1h, -30m, 2d); earlier lines still set transition state",
        parse=parse_moment,
        default=None,
        metavar="TIME",
    ),
    Option(
        "--until",
        "only lines before TIME become Events (same forms as --since)",
        parse=parse_moment,
        default=None,
        metavar="TIME",
    ),
    Option(
        "--api-version",
        "the version to print in involvedObject.apiVersion for a group the rules name without "
        "one (object: auto knows only controllerGroup); repeatable. A cluster's discovery "
        "answers this itself with --kubeconfig",
        parse=group_version,
        kind="list",
        default=(),
        metavar="GROUP/VERSION",
    ),
    Option(
        "--summary",
        "the summary on stderr: text for people, one JSON object for scripts",
        choices=("text", "json"),
        default="text",
        show=None,
    ),
    Option("--metrics", "print the Prometheus metrics too", kind="switch"),
    Option(
        "--kubeconfig",
        "write the Events to this cluster instead of printing them ('' for in-cluster or "
        "$KUBECONFIG); Events are named after their lines, so replaying a log again does not "
        "double them",
        default=None,
    ),
    CONTEXT,
    Option(
        "--events-api",
        "which Events to write, as `run --events-api`: events.k8s.io/v1 (with series), v1 "
        "(core), or auto: events.k8s.io/v1 when the cluster (--kubeconfig) serves it and RBAC "
        "allows it, else v1 (v1 without --kubeconfig)",
        choices=EVENTS_API_CHOICES,
        to=("events_api",),
        show=None,
    ),
    Option(
        "--series-finish",
        "events.k8s.io/v1: as `run --series-finish`, on the log's clock (the heartbeat runs "
        "every SECONDS of log time; every count left is written at the end)",
        parse=positive_float,
        to=("series_finish_seconds",),
        show=None,
        metavar="SECONDS",
    ),
    _YEAR,
    *EVENT_OPTIONS,
)

#: `event-sidecar explain`.
EXPLAIN_OPTIONS: Final = (
    _RULES,
    Option(
        "--output",
        "text for people, or one JSON object per line for tools",
        short="-o",
        choices=("text", "json"),
        default="text",
        show=None,
    ),
    _YEAR,
    *EVENT_OPTIONS,
)

#: `event-sidecar suggest` (its log is an argument).
SUGGEST_OPTIONS: Final = (
    Option(
        "--output",
        "write the draft to RULES instead of stdout",
        short="-o",
        default=None,
        metavar="RULES",
    ),
    Option(
        "--tests",
        "also write a tests file (`event-sidecar test`) made of the log's own lines, expecting "
        "the Events the draft gives; needs --output (the tests name the rules file)",
        default=None,
        metavar="FILE",
    ),
    Option(
        "--component", "the rules file's component (default: the log file's name)", default=None
    ),
    _YEAR,
)
