"""The `event_sidecar_` Prometheus metrics, always on a registry the caller passes in.

Label values are bounded: `reason` and `rule` come from the rules file, `source` from the command
line, `cause` and `result` from the fixed vocabularies of `sidecar.model`; `state`, `from` and `to`
come from the log, so they pass the `LabelGuard` (at most `max_state_values` per rule, the rest are
`other`, counted in `event_sidecar_state_labels_dropped_total`).

Whether counters and histograms also show a `_created` series is set at start-up
(`sidecar.exposition.show_created_series`), by the command that owns the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sidecar.labels import DEFAULT_MAX_VALUES, LabelGuard
from sidecar.model import DELAY_CAUSES, DROP_CAUSES, RELOAD_RESULTS
from sidecar.pipeline import Tally
from sidecar.transitions import TransitionTracker

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


class OnOwner(Protocol):
    """Runs a call on the thread that owns some state and returns its result, or None when that
    thread does not answer in time (`StatusServer.on_loop` for the daemon's event loop)."""

    def __call__(self, call: Callable[[], _T]) -> _T | None: ...


def _here(call: Callable[[], _T]) -> _T | None:
    """The state is owned by the caller's thread (`replay`, `explain`, tests): call it."""
    return call()


#: One row of the per-state gauges: (rule, state) labels, objects, seconds the oldest stayed.
_StateRow = tuple[tuple[str, str], int, float | None]


class _StateCollector(Collector):
    """`objects_in_state` and `state_oldest_seconds`, counted from the tracker at scrape time.

    A scrape walks the tracker once (O(objects), every scrape interval) instead of every line
    paying for gauge updates. Objects whose last line is older than the TTL are left out.

    The tracker belongs to the thread that feeds it lines (the daemon's event loop), and a scrape
    arrives on another (the status server's): walking the tracker's dict there while the loop
    changes it failed the scrape ("dictionary changed size during iteration"), so the walk runs
    through `owner`, on the tracker's own thread, and the scrape renders the rows it returns.
    Counted there, every row is one consistent moment of the tracker, and the loop is held for
    the walk only, never for the rendering. When the owner does not answer in time (a wedged
    loop, which fails `/healthz` too), the two families are exposed empty: no count rather than
    a stale one.
    """

    def __init__(self, guard: LabelGuard) -> None:
        self.guard = guard
        self.tracker: TransitionTracker | None = None
        self.clock: Callable[[], float] = lambda: 0.0
        self.ttl = 0.0
        self.owner: OnOwner = _here

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_state = GaugeMetricFamily(
            "event_sidecar_objects_in_state",
            "Objects currently in each state, by rule (its tracker's name when rules share one) "
            "and state; objects without a line for the state TTL are left out.",
            labels=["rule", "state"],
        )
        oldest = GaugeMetricFamily(
            "event_sidecar_state_oldest_seconds",
            "Seconds the earliest object to enter each state, still in it, has been there (from "
            "the lines' times), by rule and state: what a 'stuck in a state' alert watches.",
            labels=["rule", "state"],
        )
        rows = self.owner(self.rows) if self.tracker is not None else None
        for label, objects, stayed in rows or ():
            in_state.add_metric(label, objects)
            if stayed is not None:
                oldest.add_metric(label, stayed)
        yield in_state
        yield oldest

    def rows(self) -> list[_StateRow]:
        """The census, its states through the guard (on the tracker's thread, as the histogram's
        are), sorted by label."""
        if self.tracker is None:
            return []
        now = self.clock()
        merged: dict[tuple[str, str], tuple[int, float | None]] = {}
        for (rule, state), count in self.tracker.census(now - self.ttl).items():
            label = (rule, self.guard.admit(rule, state))
            objects, since = merged.get(label, (0, None))
            if count.oldest_since is not None and (since is None or count.oldest_since < since):
                since = count.oldest_since
            merged[label] = (objects + count.objects, since)
        return [
            (label, objects, None if since is None else max(0.0, now - since))
            for label, (objects, since) in sorted(merged.items())
        ]


class Metrics:
    def __init__(
        self, registry: CollectorRegistry, *, max_state_values: int = DEFAULT_MAX_VALUES
    ) -> None:
        self.registry = registry
        #: The cardinality guard on state labels, shared by the histogram and the gauges.
        self.states = LabelGuard(max_state_values)
        self.events_emitted = Counter(
            "event_sidecar_events_emitted",
            "Events accepted by the sink, by reason, type and write (create or patch; series: "
            "an events.k8s.io/v1 occurrence counted in its series, written by the heartbeat).",
            ["reason", "type", "write"],
            registry=registry,
        )
        self.events_aggregated = Counter(
            "event_sidecar_events_aggregated",
            "Events folded into a '(combined from similar events)' Event, by reason.",
            ["reason"],
            registry=registry,
        )
        self.events_already_written = Counter(
            "event_sidecar_events_already_written",
            "Creates the API refused as existing (409) under the name derived from their line: "
            "written before (a line read again after a restart, or a create whose answer was "
            "lost), so neither a new Event nor a loss.",
            registry=registry,
        )
        self.events_dropped = Counter(
            "event_sidecar_events_dropped",
            "Events not written, by cause.",
            ["cause"],
            registry=registry,
        )
        self.events_delayed = Counter(
            "event_sidecar_events_delayed",
            "Waits before an Event write was tried again, by cause: retry_after (a 429 that "
            "said how long: API Priority and Fairness), rate_limited (a 429 that did not: the "
            "EventRateLimit admission plugin; the object backs off), unreachable (no answer), "
            "unavailable (a 5xx with Retry-After: an apiserver shutting down), "
            "forbidden_transient (a 403 soon after the API was out of reach or the start: RBAC "
            "caches still filling).",
            ["cause"],
            registry=registry,
        )
        self.lines_read = Counter(
            "event_sidecar_lines_read", "Lines read, by source.", ["source"], registry=registry
        )
        self.bytes_read = Counter(
            "event_sidecar_bytes_read", "Bytes read, by source.", ["source"], registry=registry
        )
        self.lines_skipped = Counter(
            "event_sidecar_lines_skipped",
            "Lines that contain no literal any rule needs, so were not decoded, by source.",
            ["source"],
            registry=registry,
        )
        self.lines_undecodable = Counter(
            "event_sidecar_lines_undecodable",
            "Lines no decoder recognised, by source and reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.lines_too_long = Counter(
            "event_sidecar_lines_too_long",
            "Lines longer than the limit, skipped, by source.",
            ["source"],
            registry=registry,
        )
        self.lines_time_out_of_range = Counter(
            "event_sidecar_lines_time_out_of_range",
            "Lines whose time was outside the years 1-9999 (or infinite, NaN), by source: the "
            "time was dropped and the line's read time stands in.",
            ["source"],
            registry=registry,
        )
        self.lines_incomplete = Counter(
            "event_sidecar_lines_incomplete",
            "Decoded lines by what they lacked: time (the read time stands in, and the Event's "
            "name changes on every replay), level (read as info), message (empty), or "
            "unknown_level (a level given but not understood, which no level condition matches).",
            ["source", "why"],
            registry=registry,
        )
        self.rule_matches = Counter(
            "event_sidecar_rule_matches", "Lines matched, by rule.", ["rule"], registry=registry
        )
        self.rule_misses = Counter(
            "event_sidecar_rule_misses",
            "Matched lines that lacked a field the rule needs, by rule and field.",
            ["rule", "field"],
            registry=registry,
        )
        self.transitions_unchanged = Counter(
            "event_sidecar_transitions_unchanged",
            "Matched lines whose transition state did not change (no Event), by rule.",
            ["rule"],
            registry=registry,
        )
        self.transition_evictions = Counter(
            "event_sidecar_transition_evictions",
            "Objects whose transition state was forgotten to stay within the bound (the least "
            "recently seen first); the next line of such an object counts as a first observation.",
            registry=registry,
        )
        self.object_lookups = Counter(
            "event_sidecar_object_lookups",
            "Involved-object look-ups (uid, resourceVersion, apiVersion), by result.",
            ["result"],
            registry=registry,
        )
        self.rotations = Counter(
            "event_sidecar_rotations",
            "Log files rotated (rename) or truncated (copytruncate), by source and kind.",
            ["source", "kind"],
            registry=registry,
        )
        self.files_lost = Counter(
            "event_sidecar_files_lost",
            "Log files created and gone (rotated away and replaced, or deleted) before the file "
            "source could open them: their bytes are unknown and lost, by source.",
            ["source"],
            registry=registry,
        )
        self.bytes_lost = Counter(
            "event_sidecar_bytes_lost",
            "Bytes of log files never read, by source and cause (truncated: unread when a "
            "copytruncate rotation emptied the file and no copy was found).",
            ["source", "cause"],
            registry=registry,
        )
        self.connections = Counter(
            "event_sidecar_connections",
            "Socket source connections, by source and result (accepted, refused, idle_timeout, "
            "line_timeout, evicted).",
            ["source", "result"],
            registry=registry,
        )
        self.pod_log_gaps = Counter(
            "event_sidecar_pod_log_gaps",
            "Gaps in a pod log that could not be closed, by reason (instance_missed, "
            "previous_unavailable, rotated).",
            ["reason"],
            registry=registry,
        )
        self.pod_log_reconnects = Counter(
            "event_sidecar_pod_log_reconnects",
            "Pod log streams that ended or failed and were opened again.",
            registry=registry,
        )
        self.pod_log_lines_skipped = Counter(
            "event_sidecar_pod_log_lines_skipped",
            "Pod log lines a resumed stream showed again, skipped as already read.",
            registry=registry,
        )
        self.pod_log_truncations = Counter(
            "event_sidecar_pod_log_truncations",
            "Followed pod logs found truncated under a stalled stream, and read again from their "
            "start.",
            registry=registry,
        )
        self.source_unreadable = Gauge(
            "event_sidecar_source_unreadable",
            "1 while a source has failed to read without a break for --unreadable-seconds, by "
            "source and reason (forbidden, not_found, refused: the pod log API's answer; "
            "missing: no file matches a --file pattern; unreadable: its files cannot be opened); "
            "0 once it reads. The sidecar's pod then also gets a SourceUnreadable Event.",
            ["source", "reason"],
            registry=registry,
        )
        self.source_lag = Gauge(
            "event_sidecar_source_lag_bytes",
            "Bytes written to a source but not read yet.",
            ["source"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "event_sidecar_queue_depth", "Events waiting to be written.", registry=registry
        )
        self.api_latency = Histogram(
            "event_sidecar_api_request_duration_seconds",
            "Kubernetes API request latency, by verb and result.",
            ["verb", "result"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.event_latency = Histogram(
            "event_sidecar_event_latency_seconds",
            "From a line being read to its Event being accepted by the API.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.transition_duration = Histogram(
            "event_sidecar_transition_duration_seconds",
            "How long an object stayed in the state `from` before it changed to `to` (the lines' "
            "times), by rule (its tracker's name when rules share one).",
            ["rule", "from", "to"],
            buckets=_STATE_BUCKETS,
            registry=registry,
        )
        self.state_labels_dropped = Counter(
            "event_sidecar_state_labels_dropped",
            "Transition observations whose state was reported as `other` because the rule "
            "already has the maximum number of distinct state values, by rule.",
            ["rule"],
            registry=registry,
        )
        self._states = _StateCollector(self.states)
        registry.register(self._states)
        self.rules_reloads = Counter(
            "event_sidecar_rules_reloads",
            "Rules reloads, by result: success (new rules run), failure (invalid or unreadable: "
            "the old rules keep running), unchanged (asked for, same content).",
            ["result"],
            registry=registry,
        )
        self.rules_info = Gauge(
            "event_sidecar_rules_info",
            "1 for the rules that run: the SHA-256 of the rules file (first 16 hex digits) and "
            "the number of rules.",
            ["hash", "rules"],
            registry=registry,
        )
        self.events_api = Gauge(
            "event_sidecar_events_api_info",
            "The API Events are written to (1 for the one in use): v1 or events.k8s.io/v1.",
            ["api"],
            registry=registry,
        )
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

    def count_lines(self, source: str, tally: Tally) -> None:
        """Add one block's tally from the pipeline (fed from `source`)."""
        child = self.child
        child(self.lines_read, source).inc(tally.lines)
        child(self.bytes_read, source).inc(tally.bytes)
        child(self.lines_too_long, source).inc(tally.too_long)
        child(self.lines_skipped, source).inc(tally.skipped)
        for reason, number in tally.undecodable.items():
            child(self.lines_undecodable, source, reason).inc(number)
        for rule, number in tally.matches.items():
            child(self.rule_matches, rule).inc(number)
        for (rule, missing), number in tally.misses.items():
            child(self.rule_misses, rule, missing).inc(number)
        for rule, number in tally.unchanged.items():
            child(self.transitions_unchanged, rule).inc(number)
        if tally.time_out_of_range:
            child(self.lines_time_out_of_range, source).inc(tally.time_out_of_range)
        for why, number in tally.incomplete.items():
            child(self.lines_incomplete, source, why).inc(number)
        if tally.evictions:
            self.transition_evictions.inc(tally.evictions)
        if tally.durations:
            self.observe_durations(tally.durations)

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
