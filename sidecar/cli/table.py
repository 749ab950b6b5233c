"""The options of `run`, and the Event options `replay` and `explain` share with it, one row
each (the other commands' are in `table_offline` and `table_inject`).

Defaults come from the settings fields named in `to` (see `sidecar.core.settings` for why each is
what it is); a row states a default only when it sets no field. A new option is one row here (plus
its field in `sidecar.core.settings` when it is a new setting).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Final

from sidecar.cli.options import (
    Option,
    host_port,
    host_port_text,
    non_negative_float,
    positive_float,
    positive_int,
    show_host_port,
)
from sidecar.model import EVENTS_API_CHOICES

LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def _pod_name(environ: Mapping[str, str]) -> str:
    return environ.get("POD_NAME") or socket.gethostname()


def _pod_namespace(environ: Mapping[str, str]) -> str:
    return environ.get("POD_NAMESPACE", "")


#: How Events are named, correlated and limited: `run` and `replay`.
EVENT_OPTIONS: Final = (
    Option("--component", "source.component (default: the rules file's)", to=("component",)),
    Option(
        "--host",
        "source.host and reportingInstance (default: $POD_NAME, else the host name)",
        to=("host",),
        default_from=_pod_name,
    ),
    Option(
        "--max-line-bytes",
        "longer lines are skipped and counted",
        parse=positive_int,
        to=("files.max_line_bytes", "sockets.max_line_bytes", "pod_log.max_line_bytes"),
    ),
    Option(
        "--aggregate-max",
        "distinct messages per object and reason before aggregating, as client-go",
        parse=positive_int,
        to=("correlation.max_similar_events",),
    ),
    Option(
        "--aggregate-window",
        "seconds of the aggregation window, as client-go",
        parse=positive_float,
        to=("correlation.similar_window_seconds",),
    ),
    Option(
        "--spam-burst",
        "Events per object at once before the spam filter drops, as client-go",
        parse=positive_int,
        to=("correlation.spam_burst",),
    ),
    Option(
        "--spam-refill-seconds",
        "seconds to earn one more Event after the burst, as client-go",
        parse=positive_float,
        to=("correlation.spam_refill_seconds",),
    ),
    Option(
        "--spam-key-by-reason",
        "give each reason its own spam bucket (client-go shares one per object and type)",
        kind="switch",
        to=("correlation.spam_key_by_reason",),
    ),
)

#: The kubeconfig context: `run` and `replay`.
CONTEXT: Final = Option("--context", "kubeconfig context to use", default=None)

#: `event-sidecar run`, every row also settable as SIDECAR_<OPTION>.
RUN_OPTIONS: Final = (
    Option("--rules", "the rules file (YAML); required", default=None),
    Option("--file", "log file path or glob (repeatable)", kind="list", to=("files.paths",)),
    Option(
        "--start",
        "where files are read from at a first start, when there is no checkpoint yet "
        "(checkpoint and beginning: their beginning; end: their end); a restart with a "
        "checkpoint always resumes from it (remove it to start afresh)",
        choices=("checkpoint", "end", "beginning"),
        to=("files.start",),
    ),
    Option(
        "--watch",
        "how file changes are noticed",
        choices=("auto", "inotify", "poll"),
        to=("files.watch",),
    ),
    Option(
        "--poll-interval",
        "seconds between scans when polling",
        parse=positive_float,
        to=("files.poll_interval",),
    ),
    Option(
        "--stack-linger",
        "seconds a line that ended a read waits for a stack (a traceback) after it (default "
        "0.05; a file's, while its writes settle or when polling, until the next read)",
        parse=positive_float,
        to=("files.linger", "sockets.linger", "pod_log.linger"),
    ),
    Option(
        "--settle-time",
        "seconds further writes to a file (inotify), or chunks of a pod's log, wait before they "
        "are read together, so that many small writes cost one wake-up; adds at most this much "
        "latency, twice for a read's last line, which waits for a stack until the next settled "
        "read (default 0.1; 0: each at once, the lowest latency for more CPU)",
        parse=non_negative_float,
        to=("files.settle_time", "pod_log.settle_time"),
    ),
    Option(
        "--rotate-wait",
        "seconds a rotated file is still read after its last growth",
        parse=non_negative_float,
        to=("files.rotate_wait",),
    ),
    Option(
        "--checkpoint",
        "checkpoint file (default: next to the first --file, on its volume; none for "
        "--pod-log, which then starts at the current instance's first line)",
        to=("checkpoint.path",),
    ),
    Option(
        "--checkpoint-interval",
        "minimum seconds between checkpoint writes (a large one waits longer: 64 KiB/s on average)",
        parse=positive_float,
        to=("checkpoint.interval",),
    ),
    Option(
        "--pod-log",
        "follow this container of the pod through the pod log API (`kubectl logs -f`): no "
        "change to the controller; needs get on pods and pods/log",
        to=("pod_log.container",),
    ),
    Option(
        "--pod",
        "the pod whose container --pod-log follows (default: $POD_NAME)",
        to=("pod_log.pod",),
        default_from=lambda environ: environ.get("POD_NAME", ""),
    ),
    Option(
        "--namespace",
        "its namespace (default: $POD_NAMESPACE)",
        to=("pod_log.namespace",),
        default_from=_pod_namespace,
    ),
    Option(
        "--tcp",
        "listen for log lines on host:port, TCP (repeatable)",
        parse=host_port_text,
        kind="list",
        to=("sockets.tcp",),
    ),
    Option(
        "--unix",
        "listen for log lines on this Unix socket (repeatable)",
        kind="list",
        to=("sockets.unix",),
    ),
    Option(
        "--socket-allow-remote",
        "allow --tcp on addresses other than loopback",
        kind="switch",
        to=("sockets.allow_remote",),
    ),
    Option(
        "--max-connections",
        "socket connections at once",
        parse=positive_int,
        to=("sockets.max_connections",),
    ),
    Option(
        "--idle-timeout",
        "seconds a silent connection is kept",
        parse=positive_float,
        to=("sockets.idle_timeout",),
    ),
    Option(
        "--line-timeout",
        "seconds a started line may take to complete (its newline to arrive); a connection that "
        "trickles bytes without one is closed and counted (connections_total{result=line_timeout})",
        parse=positive_float,
        to=("sockets.line_timeout",),
    ),
    Option(
        "--transition-keys",
        "objects whose transition state is remembered; past it the least recently seen is "
        "forgotten and counted (transition_evictions_total)",
        parse=positive_int,
        to=("transitions.max_keys",),
    ),
    Option(
        "--state-ttl",
        "seconds after its last line when an object leaves objects_in_state (its state is kept)",
        parse=positive_float,
        to=("transitions.state_ttl",),
    ),
    Option(
        "--max-state-values",
        "distinct state values per rule in metric labels; more are reported as 'other' and "
        "counted (state_labels_dropped_total)",
        parse=positive_int,
        to=("transitions.max_state_values",),
    ),
    Option(
        "--reload-interval",
        "seconds between checks of the rules file's hash (besides inotify on its folder and "
        "SIGHUP)",
        parse=positive_float,
        to=("reload.poll_interval",),
    ),
    Option(
        "--enable-reload-endpoint",
        "serve POST /-/reload on the --listen address",
        kind="switch",
        to=("reload.endpoint",),
    ),
    Option(
        "--metrics-created",
        "also expose the _created series of counters and histograms",
        kind="switch",
        to=("http.created_series",),
    ),
    Option("--queue-size", "queued Events", parse=positive_int, to=("queues.events",)),
    Option(
        "--writes",
        "Event writes in flight at once; each object's Events are still written in order",
        parse=positive_int,
        to=("queues.writes",),
    ),
    Option(
        "--unreadable-seconds",
        "seconds a source may fail to read without a break before /readyz, "
        "event_sidecar_source_unreadable and a Warning Event on the pod say so",
        parse=positive_float,
        to=("http.unreadable_seconds",),
    ),
    Option(
        "--drain-seconds",
        "on SIGTERM, seconds to write queued Events",
        parse=non_negative_float,
        to=("queues.drain_deadline",),
    ),
    Option(
        "--retry-seconds",
        "seconds between tries of an Event write the API did not answer, as client-go",
        parse=positive_float,
        to=("retry.interval_seconds",),
    ),
    Option(
        "--listen",
        "host:port of /metrics, /healthz and /readyz",
        parse=host_port,
        to=("http.host", "http.port"),
        spread=True,
        show=show_host_port,
    ),
    Option(
        "--kubeconfig",
        "kubeconfig to use ('' or unset: in-cluster, else $KUBECONFIG)",
        default=None,
    ),
    CONTEXT,
    Option(
        "--dry-run",
        "keep Events in memory instead of writing them (for trying rules)",
        kind="switch",
    ),
    Option("--log-level", "the daemon's own log level", choices=LOG_LEVELS, default="info"),
    Option(
        "--events-api",
        "where Events are written: events.k8s.io/v1 (with series), v1 (core), or auto: "
        "events.k8s.io/v1 when served and allowed by RBAC, else v1",
        choices=EVENTS_API_CHOICES,
        to=("events_api",),
    ),
    Option(
        "--series-finish",
        "events.k8s.io/v1: seconds between series heartbeats (a series quiet that long gets "
        "its final count), and the gap between two occurrences, on the lines' clock, that "
        "ends a series and starts a new Event; client-go's finishTime",
        parse=positive_float,
        to=("series_finish_seconds",),
    ),
    *EVENT_OPTIONS,
)
