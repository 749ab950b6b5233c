"""The `event_sidecar_` Prometheus metrics, always on a registry the caller passes in.

Label values are bounded: `reason` and `rule` come from the rules file, `source` from the command
line, `cause` and `result` from the fixed vocabularies of `sidecar.model`; `state`, `from` and `to`
come from the log, so they pass the `LabelGuard` (at most `max_state_values` per rule, the rest are
`other`, counted in `event_sidecar_state_labels_dropped_total`).

Whether counters and histograms also show a `_created` series is set at start-up
(`sidecar.runtime.exposition.show_created_series`), by the command that owns the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar, overload

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sidecar.core.labels import DEFAULT_MAX_VALUES, LabelGuard
from sidecar.core.pipeline import LineCounts
from sidecar.core.transitions import TransitionTracker
from sidecar.model import DELAY_CAUSES, DROP_CAUSES, RELOAD_RESULTS
from sidecar.runtime.statecensus import OnOwner, StateCensus

#: A metric with labels: `child` resolves its children once.
_Labelled = TypeVar("_Labelled", Counter, Histogram)
_T = TypeVar("_T")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Seconds an object stays in a state: from a second to a day.
_STATE_BUCKETS = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    86400.0,
)


_M = TypeVar("_M")


class _Declared(Generic[_M]):
    """A metric (or collector) declared once on `Metrics`, in the class body: each instance
    makes its own on its registry (`Metrics.__init__`, in declaration order, which is the order
    of `/metrics`), and that instance attribute then stands in front of this one."""

    def __init__(self, make: Callable[[Metrics, CollectorRegistry], _M]) -> None:
        self.make = make

    @overload
    def __get__(self, instance: None, owner: type) -> _Declared[_M]: ...

    @overload
    def __get__(self, instance: Metrics, owner: type) -> _M: ...

    def __get__(self, instance: Metrics | None, owner: type) -> _Declared[_M] | _M:
        if instance is None:
            return self
        raise AttributeError("made by Metrics.__init__")  # pragma: no cover


def _counter(name: str, documentation: str, labels: Sequence[str] = ()) -> _Declared[Counter]:
    return _Declared(lambda _, registry: Counter(name, documentation, labels, registry=registry))


def _gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> _Declared[Gauge]:
    return _Declared(lambda _, registry: Gauge(name, documentation, labels, registry=registry))


def _histogram(
    name: str, documentation: str, labels: Sequence[str] = (), *, buckets: Sequence[float]
) -> _Declared[Histogram]:
    return _Declared(
        lambda _, registry: Histogram(
            name, documentation, labels, buckets=buckets, registry=registry
        )
    )


class Metrics:
    """Every `event_sidecar_` metric, declared once below, made on the registry passed in."""

    #: The cardinality guard on state labels, shared by the histogram and the gauges.
    states: LabelGuard

    # Events: written, folded, dropped, delayed.
    events_emitted = _counter(
        "event_sidecar_events_emitted",
        "Events accepted by the sink, by reason, type and write (create or patch; series: "
        "an events.k8s.io/v1 occurrence counted in its series, written by the heartbeat).",
        ["reason", "type", "write"],
    )
    events_aggregated = _counter(
        "event_sidecar_events_aggregated",
        "Events folded into a '(combined from similar events)' Event, by reason.",
        ["reason"],
    )
    events_already_written = _counter(
        "event_sidecar_events_already_written",
        "Creates the API refused as existing (409) under the name derived from their line: "
        "written before (a line read again after a restart, or a create whose answer was "
        "lost), so neither a new Event nor a loss.",
    )
    events_dropped = _counter(
        "event_sidecar_events_dropped",
        "Events not written, by cause.",
        ["cause"],
    )
    events_delayed = _counter(
        "event_sidecar_events_delayed",
        "Waits before an Event write was tried again, by cause: retry_after (a 429 that "
        "said how long: API Priority and Fairness), rate_limited (a 429 that did not: the "
        "EventRateLimit admission plugin; the object backs off), unreachable (no answer), "
        "unavailable (a 5xx with Retry-After: an apiserver shutting down), "
        "forbidden_transient (a 403 soon after the API was out of reach or the start: RBAC "
        "caches still filling).",
        ["cause"],
    )
    # Lines: read, skipped, decoded or not.
    lines_read = _counter(
        "event_sidecar_lines_read",
        "Lines read, by source.",
        ["source"],
    )
    bytes_read = _counter(
        "event_sidecar_bytes_read",
        "Bytes read, by source.",
        ["source"],
    )
    lines_skipped = _counter(
        "event_sidecar_lines_skipped",
        "Lines that contain no literal any rule needs, so were not decoded, by source.",
        ["source"],
    )
    lines_undecodable = _counter(
        "event_sidecar_lines_undecodable",
        "Lines no decoder recognised, by source and reason.",
        ["source", "reason"],
    )
    lines_too_long = _counter(
        "event_sidecar_lines_too_long",
        "Lines longer than the limit, skipped, by source.",
        ["source"],
    )
    lines_time_out_of_range = _counter(
        "event_sidecar_lines_time_out_of_range",
        "Lines whose time was outside the years 1-9999 (or infinite, NaN), by source: the "
        "time was dropped and the line's read time stands in.",
        ["source"],
    )
    lines_declared_format = _counter(
        "event_sidecar_lines_declared_format",
        "Lines read by each line format the rules file declares (`formats.declared`), by "
        "format; 0 for one that read none of the lines the pre-filter passed.",
        ["format"],
    )
    lines_incomplete = _counter(
        "event_sidecar_lines_incomplete",
        "Decoded lines by what they lacked: time (the read time stands in, and the Event's "
        "name changes on every replay), level (read as info), message (empty), or "
        "unknown_level (a level given but not understood, which no level condition matches).",
        ["source", "why"],
    )
    # Rules and transitions, as the lines meet them.
    rule_matches = _counter(
        "event_sidecar_rule_matches",
        "Lines matched, by rule.",
        ["rule"],
    )
    rule_misses = _counter(
        "event_sidecar_rule_misses",
        "Matched lines that lacked a field the rule needs, by rule and field.",
        ["rule", "field"],
    )
    transitions_unchanged = _counter(
        "event_sidecar_transitions_unchanged",
        "Matched lines whose transition state did not change (no Event), by rule.",
        ["rule"],
    )
    transition_evictions = _counter(
        "event_sidecar_transition_evictions",
        "Objects whose transition state was forgotten to stay within the bound (the least "
        "recently seen first); the next line of such an object counts as a first observation.",
    )
    # Sources and the API.
    object_lookups = _counter(
        "event_sidecar_object_lookups",
        "Involved-object look-ups (uid, resourceVersion, apiVersion), by result.",
        ["result"],
    )
    rotations = _counter(
        "event_sidecar_rotations",
        "Log files rotated (rename) or truncated (copytruncate), by source and kind.",
        ["source", "kind"],
    )
    files_lost = _counter(
        "event_sidecar_files_lost",
        "Log files created and gone (rotated away and replaced, or deleted) before the file "
        "source could open them: their bytes are unknown and lost, by source.",
        ["source"],
    )
    bytes_lost = _counter(
        "event_sidecar_bytes_lost",
        "Bytes of log files never read, by source and cause (truncated: unread when a "
        "copytruncate rotation emptied the file and no copy was found).",
        ["source", "cause"],
    )
    connections = _counter(
        "event_sidecar_connections",
        "Socket source connections, by source and result (accepted, refused, idle_timeout, "
        "line_timeout, evicted).",
        ["source", "result"],
    )
    pod_log_gaps = _counter(
        "event_sidecar_pod_log_gaps",
        "Gaps in a pod log that could not be closed, by reason (instance_missed, "
        "previous_unavailable, rotated).",
        ["reason"],
    )
    pod_log_reconnects = _counter(
        "event_sidecar_pod_log_reconnects",
        "Pod log streams that ended or failed and were opened again.",
    )
    pod_log_lines_skipped = _counter(
        "event_sidecar_pod_log_lines_skipped",
        "Pod log lines a resumed stream showed again, skipped as already read.",
    )
    pod_log_truncations = _counter(
        "event_sidecar_pod_log_truncations",
        "Followed pod logs found truncated under a stalled stream, and read again from their "
        "start.",
    )
    source_unreadable = _gauge(
        "event_sidecar_source_unreadable",
        "1 while a source has failed to read without a break for --unreadable-seconds, by "
        "source and reason (forbidden, not_found, refused: the pod log API's answer; "
        "missing: no file matches a --file pattern; unreadable: its files cannot be opened); "
        "0 once it reads. The sidecar's pod then also gets a SourceUnreadable Event.",
        ["source", "reason"],
    )
    source_lag = _gauge(
        "event_sidecar_source_lag_bytes",
        "Bytes written to a source but not read yet.",
        ["source"],
    )
    queue_depth = _gauge(
        "event_sidecar_queue_depth",
        "Events waiting to be written.",
    )
    api_latency = _histogram(
        "event_sidecar_api_request_duration_seconds",
        "Kubernetes API request latency, by verb and result.",
        ["verb", "result"],
        buckets=_LATENCY_BUCKETS,
    )
    event_latency = _histogram(
        "event_sidecar_event_latency_seconds",
        "From a line being read to its Event being accepted by the API.",
        buckets=_LATENCY_BUCKETS,
    )
    # How long objects stay in their states (the per-state gauges are `StateCensus`).
    transition_duration = _histogram(
        "event_sidecar_transition_duration_seconds",
        "How long an object stayed in the state `from` before it changed to `to` (the lines' "
        "times), by rule (its tracker's name when rules share one).",
        ["rule", "from", "to"],
        buckets=_STATE_BUCKETS,
    )
    state_labels_dropped = _counter(
        "event_sidecar_state_labels_dropped",
        "Transition observations whose state was reported as `other` because the rule "
        "already has the maximum number of distinct state values, by rule.",
        ["rule"],
    )
    reasons_replaced = _counter(
        "event_sidecar_reasons_replaced",
        'Events whose reason, rendered from the line (a rule\'s `reason: "{to|camel}"`), '
        "was not a reason or past the rule's 50 distinct ones, and was replaced by the "
        "template's stand-in (`PhaseOther`), by rule.",
        ["rule"],
    )
    _states = _Declared(lambda metrics, registry: StateCensus.on(registry, metrics.states))
    # What runs: the rules and the Events API.
    rules_reloads = _counter(
        "event_sidecar_rules_reloads",
        "Rules reloads, by result: success (new rules run), failure (invalid or unreadable: "
        "the old rules keep running), unchanged (asked for, same content).",
        ["result"],
    )
    rules_info = _gauge(
        "event_sidecar_rules_info",
        "1 for the rules that run: the SHA-256 of the rules file (first 16 hex digits) and "
        "the number of rules.",
        ["hash", "rules"],
    )
    events_api = _gauge(
        "event_sidecar_events_api_info",
        "The API Events are written to (1 for the one in use): v1 or events.k8s.io/v1.",
        ["api"],
    )

    def __init__(
        self, registry: CollectorRegistry, *, max_state_values: int = DEFAULT_MAX_VALUES
    ) -> None:
        self.registry = registry
        self.states = LabelGuard(max_state_values)
        for attribute, declared in vars(Metrics).items():
            if isinstance(declared, _Declared):
                setattr(self, attribute, declared.make(self, registry))
        #: Children by metric and label values: `labels(...)` costs several times the
        #: increment (it validates and joins the values under a lock), and label values are
        #: few and bounded (see the module), so each is resolved once.
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        #: `transition_duration`'s children by (rule, from, to) as seen, for states the guard
        #: admitted; `forget_states` drops a rule's with the guard's memory of it.
        self._durations: dict[tuple[str, str, str], Histogram] = {}
        # Pre-create the fixed label values so dashboards see zeros, not gaps.
        for cause in DROP_CAUSES:
            self.child(self.events_dropped, cause)
        for delay in DELAY_CAUSES:
            self.child(self.events_delayed, delay)
        for result in RELOAD_RESULTS:
            self.rules_reloads.labels(result)

    def follow_states(
        self, tracker: TransitionTracker, clock: Callable[[], float], ttl: float
    ) -> None:
        """Export the per-state gauges of `tracker`; objects silent for `ttl` seconds by `clock`
        are not counted."""
        self._states.tracker, self._states.clock, self._states.ttl = tracker, clock, ttl

    def census_on(self, owner: OnOwner) -> None:
        """Count the per-state gauges through `owner`, on the thread that changes the tracker
        (the daemon's event loop), whichever thread scrapes."""
        self._states.owner = owner

    def show_rules(self, digest: str, rules: int) -> None:
        """`rules_info` names only the rules that run now."""
        self.rules_info.clear()
        self.rules_info.labels(digest[:16], str(rules)).set(1)

    def child(self, metric: _Labelled, *values: str) -> _Labelled:
        """`metric.labels(*values)`, resolved once per label set. Safe from any thread: two
        threads resolving the same new set at once get the same child (`labels` is locked)."""
        key = (metric, values)
        found: _Labelled | None = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def count_lines(self, source: str, counts: LineCounts) -> None:
        """Add one block's counts from the pipeline (fed from `source`)."""
        child = self.child
        child(self.lines_read, source).inc(counts.lines)
        child(self.bytes_read, source).inc(counts.bytes)
        child(self.lines_too_long, source).inc(counts.too_long)
        child(self.lines_skipped, source).inc(counts.skipped)
        for reason, number in counts.undecodable.items():
            child(self.lines_undecodable, source, reason).inc(number)
        for rule, number in counts.matches.items():
            child(self.rule_matches, rule).inc(number)
        for (rule, missing), number in counts.misses.items():
            child(self.rule_misses, rule, missing).inc(number)
        for rule, number in counts.unchanged.items():
            child(self.transitions_unchanged, rule).inc(number)
        if counts.time_out_of_range:
            child(self.lines_time_out_of_range, source).inc(counts.time_out_of_range)
        for why, number in counts.incomplete.items():
            child(self.lines_incomplete, source, why).inc(number)
        for name, number in counts.declared.items():
            child(self.lines_declared_format, name).inc(number)
        if counts.evictions:
            self.transition_evictions.inc(counts.evictions)
        if counts.durations:
            self.observe_durations(counts.durations)
        for rule, number in counts.reasons_replaced.items():
            child(self.reasons_replaced, rule).inc(number)

    def observe_durations(self, durations: list[tuple[str, str, str, float]]) -> None:
        """One block's transitions with a known duration, their states through the guard.

        Children are kept per label set, as `child` keeps counters': a flapping object brings
        a duration per transition, and `labels()` costs more than `observe`."""
        children = self._durations
        for rule, before, after, seconds in durations:
            child = children.get((rule, before, after))
            if child is None:
                child = self._duration_child(rule, before, after)
            child.observe(seconds)

    def _duration_child(self, rule: str, before: str, after: str) -> Histogram:
        admit = self.states.admit
        shown_before, shown_after = admit(rule, before), admit(rule, after)
        if shown_before != before or shown_after != after:
            self.state_labels_dropped.labels(rule).inc()
            return self.transition_duration.labels(rule, shown_before, shown_after)
        child = self._durations[(rule, before, after)] = self.transition_duration.labels(
            rule, before, after
        )
        return child

    def forget_states(self, rules: Iterable[str]) -> None:
        """Start the state labels of `rules` afresh (a reload changed them)."""
        forgotten = set(rules)
        self.states.forget(forgotten)
        for key in [key for key in self._durations if key[0] in forgotten]:
            del self._durations[key]
