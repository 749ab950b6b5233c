"""The recorder's write path: dedup PATCH, re-create on 404, retries on transport errors only,
and a counted cause for every Event that is not written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.correlate import Correlator, CorrelatorSettings, Write
from sidecar.core.events.corev1 import Event, EventNamer, InvolvedObject
from sidecar.model import DROP_CAUSES, EventSpec, ObjectTarget, RetrySettings
from sidecar.recording.recorder import Recorder
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink, NotFound, Refused, Throttled, Unreachable


class ScriptedSink(MemorySink):
    """A MemorySink whose next calls fail as scripted."""

    def __init__(self, failures: list[Exception]) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    def create(self, event: Event) -> None:
        self._maybe_fail()
        super().create(event)

    def patch(self, event: Event, patch: dict[str, Any]) -> None:
        self._maybe_fail()
        super().patch(event, patch)


SPEC = EventSpec(
    rule="r",
    target=ObjectTarget("Pod", "web-0", "shop", "v1"),
    type="Warning",
    reason="BackOff",
    message="restarting",
    time=None,
)


def recorder(sink: MemorySink, sleeps: list[float]) -> tuple[Recorder, CollectorRegistry]:
    registry = CollectorRegistry()
    clock = lambda: 1_700_000_000.0  # noqa: E731
    return (
        Recorder(
            sink=sink,
            correlator=Correlator(CorrelatorSettings(), EventNamer()),
            namer=EventNamer(),
            metrics=Metrics(registry),
            component="c",
            host="h",
            clock=clock,
            retry=RetrySettings(max_tries=12, interval_seconds=10.0),
            sleep=sleeps.append,
            jitter=lambda: 0.25,
        ),
        registry,
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_create_then_patch_counts_emitted_by_reason_type_and_write() -> None:
    sink = MemorySink()
    rec, registry = recorder(sink, [])
    assert [rec.record(SPEC) for _ in range(3)] == ["create", "patch", "patch"]
    (stored,) = sink.events.values()
    assert stored.count == 3
    emitted = "event_sidecar_events_emitted_total"
    assert value(registry, emitted, reason="BackOff", type="Warning", write="create") == 1
    assert value(registry, emitted, reason="BackOff", type="Warning", write="patch") == 2


def test_patch_of_an_expired_event_recreates_it_with_the_cumulative_count() -> None:
    sink = MemorySink()
    rec, _ = recorder(sink, [])
    rec.record(SPEC)
    rec.record(SPEC)
    sink.events.clear()  # the apiserver's --event-ttl expired it
    assert rec.record(SPEC) == "create"
    (stored,) = sink.events.values()
    assert stored.count == 3
    assert sink.writes[-1][1] == sink.writes[0][1]  # same name


def test_transport_errors_are_retried_with_a_random_first_delay() -> None:
    sleeps: list[float] = []
    sink = ScriptedSink([Unreachable("connection refused")] * 3)
    rec, _registry = recorder(sink, sleeps)
    assert rec.record(SPEC) == "create"
    assert sleeps == [2.5, 10.0, 10.0]
    assert sink.calls == 4


def test_retries_are_bounded_and_the_drop_is_counted() -> None:
    sleeps: list[float] = []
    sink = ScriptedSink([Unreachable("timeout")] * 20)
    rec, registry = recorder(sink, sleeps)
    assert rec.record(SPEC) == "retries_exhausted"
    assert sink.calls == 12
    assert len(sleeps) == 11
    assert value(registry, "event_sidecar_events_dropped_total", cause="retries_exhausted") == 1


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (Refused("forbidden", "events is forbidden"), "forbidden"),
        (Refused("namespace_terminating", "being terminated"), "namespace_terminating"),
        (NotFound("namespace_missing", "namespaces shop not found"), "namespace_missing"),
        (Refused("invalid", "Unprocessable"), "invalid"),
        (Refused("rejected", "500"), "rejected"),
    ],
)
def test_apiserver_refusals_are_final_and_counted(error: Exception, cause: str) -> None:
    sleeps: list[float] = []
    sink = ScriptedSink([error])
    rec, registry = recorder(sink, sleeps)
    assert rec.record(SPEC) == cause
    assert sleeps == []
    assert sink.calls == 1
    assert value(registry, "event_sidecar_events_dropped_total", cause=cause) == 1
    # The sink keeps working afterwards.
    assert rec.record(SPEC) in {"create", "patch"}


def test_a_create_answered_409_is_already_written_not_a_drop_and_its_repeats_patch_it() -> None:
    sink = MemorySink()
    rec, registry = recorder(sink, [])
    assert rec.record(SPEC) == "create"
    (name,) = [key[1] for key in sink.events]
    # A second process (a restart) with a fresh correlator and the same line-derived name.
    again = recorder_named(sink, lambda _: name)
    assert [again.record(SPEC) for _ in range(2)] == ["already_written", "patch"]
    assert sink.events[("shop", name)].count == 2
    assert value(again.metrics.registry, "event_sidecar_events_already_written_total") == 1
    assert (
        value(again.metrics.registry, "event_sidecar_events_dropped_total", cause="conflict") == 0
    )
    assert value(registry, "event_sidecar_events_already_written_total") == 0


def test_a_create_stored_although_its_answer_was_lost_is_already_written() -> None:
    class LostAnswer(MemorySink):
        """Stores the first create, then answers as if the connection broke."""

        lost = False

        def create(self, event: Event) -> None:
            super().create(event)
            if not self.lost:
                self.lost = True
                raise Unreachable("read timed out")

    sink = LostAnswer()
    sleeps: list[float] = []
    rec, registry = recorder(sink, sleeps)
    assert rec.record(SPEC) == "already_written"
    assert len(sleeps) == 1
    assert [event.count for event in sink.events.values()] == [1]
    assert value(registry, "event_sidecar_events_already_written_total") == 1
    assert (
        sum(
            value(registry, "event_sidecar_events_dropped_total", cause=cause)
            for cause in DROP_CAUSES
        )
        == 0
    )


@pytest.mark.parametrize(
    ("line_time", "expected"),
    [
        (1_600_000_000.0, 1_600_000_000.0),  # a backlog: the line's own time
        (1_800_000_000.0, 1_700_000_000.0),  # the line's clock is ahead: clamped to now
        (None, 1_650_000_000.0),  # no time on the line: the recorder's clock
    ],
)
def test_an_event_has_its_line_time_clamped_to_now(
    line_time: float | None, expected: float
) -> None:
    sink = MemorySink()
    registry = CollectorRegistry()
    rec = Recorder(
        sink=sink,
        correlator=Correlator(CorrelatorSettings(), EventNamer()),
        namer=EventNamer(),
        metrics=Metrics(registry),
        component="c",
        host="h",
        clock=lambda: 1_650_000_000.0,
        wall_clock=lambda: 1_700_000_000.0,
    )
    assert rec.record(replace(SPEC, time=line_time)) == "create"
    (stored,) = sink.events.values()
    assert stored.first_timestamp == stored.last_timestamp == expected


def recorder_named(sink: MemorySink, namer: Callable[[str], str]) -> Recorder:
    """A recorder whose Event names come from `namer` (e.g. one fixed line-derived name)."""

    class FixedNamer(EventNamer):
        def __call__(self, object_name: str) -> str:
            return namer(object_name)

    fixed = FixedNamer()
    return Recorder(
        sink=sink,
        correlator=Correlator(CorrelatorSettings(), fixed),
        namer=fixed,
        metrics=Metrics(CollectorRegistry()),
        component="c",
        host="h",
        clock=lambda: 1_700_000_000.0,
    )


def test_spam_filter_drops_are_counted() -> None:
    sink = MemorySink()
    rec, registry = recorder(sink, [])
    outcomes = [rec.record(SPEC) for _ in range(30)]
    assert outcomes.count("spam_filter") == 5
    assert value(registry, "event_sidecar_events_dropped_total", cause="spam_filter") == 5
    (stored,) = sink.events.values()
    assert stored.count == 25


def test_invalid_event_is_dropped_before_sending() -> None:
    sink = MemorySink()
    rec, registry = recorder(sink, [])
    bad = EventSpec("r", ObjectTarget("Pod", "", "shop"), "Normal", "R", "m", None)
    assert rec.record(bad) == "invalid"
    assert sink.writes == []
    assert value(registry, "event_sidecar_events_dropped_total", cause="invalid") == 1


def test_resolve_result_is_the_involved_object() -> None:
    assert MemorySink().resolve(SPEC.target) == InvolvedObject("Pod", "web-0", "shop", "v1")


NORMAL = replace(SPEC, type="Normal", reason="Pulled", message="pulled")


def test_a_429_with_retry_after_sleeps_that_long_bounded_and_counts_the_delay() -> None:
    sleeps: list[float] = []
    sink = ScriptedSink([Throttled("APF", 3.0), Throttled("APF", 3600.0)])
    rec, registry = recorder(sink, sleeps)
    assert rec.record(NORMAL) == "create"
    assert sleeps == [3.0, RetrySettings().retry_after_max_seconds]
    delayed = "event_sidecar_events_delayed_total"
    assert value(registry, delayed, cause="retry_after") == 2
    assert value(registry, delayed, cause="rate_limited") == 0


def test_a_429_without_retry_after_drops_a_normal_and_delays_a_warning_of_that_object() -> None:
    sleeps: list[float] = []
    now = [0.0]
    sink = ScriptedSink([Throttled("EventRateLimit", None)])
    rec, registry = recorder(sink, sleeps)
    rec._monotonic = lambda: now[0]
    # The first Normal is refused: dropped, and its object starts backing off (1 s, jittered
    # to 0.5 + 0.5 * 0.25 of it).
    assert rec.record(NORMAL) == "rate_limited"
    assert sleeps == []
    # While it backs off, another Normal about it is dropped without a try ...
    calls = sink.calls
    assert rec.record(replace(NORMAL, message="pulled again")) == "rate_limited"
    assert sink.calls == calls
    # ... an Event about another object is written ...
    other = replace(NORMAL, target=ObjectTarget("Pod", "web-1", "shop", "v1"))
    assert rec.record(other) == "create"
    # ... and a Warning about it waits out the back-off, then is written.
    assert rec.record(SPEC) == "create"
    assert sleeps == [0.625]
    dropped = "event_sidecar_events_dropped_total"
    assert value(registry, dropped, cause="rate_limited") == 2
    assert value(registry, "event_sidecar_events_delayed_total", cause="rate_limited") == 1
    # Written: the back-off is over, a Normal goes through again.
    assert rec.record(replace(NORMAL, message="third")) == "create"


def test_a_warning_refused_again_and_again_backs_off_doubling_then_is_dropped() -> None:
    sleeps: list[float] = []
    sink = ScriptedSink([Throttled("EventRateLimit", None)] * 20)
    rec, registry = recorder(sink, sleeps)
    rec.retry = RetrySettings(max_tries=4, backoff_seconds=1.0, backoff_max_seconds=3.0)
    assert rec.record(SPEC) == "rate_limited"
    # 1, 2, 3 (capped), 3 seconds, each 62.5 % with this jitter.
    assert sleeps == [0.625, 1.25, 1.875, 1.875]
    assert value(registry, "event_sidecar_events_dropped_total", cause="rate_limited") == 1


def test_an_event_the_spam_filter_drops_is_never_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a flood most Events are dropped (25 per object, then one per 300 s): the spam
    filter's verdict comes before any Event is made, so a dropped one costs no Event, and
    the Events written are the same as before."""
    built: list[str] = []
    make = Event.__init__

    def counting(self: Event, *args: Any, **kwargs: Any) -> None:
        built.append("Event")
        make(self, *args, **kwargs)

    monkeypatch.setattr(Event, "__init__", counting)
    rec, registry = recorder(MemorySink(), [])
    # Decided only (`prepare`): the sink would make its own Event for each PATCH it stores.
    decided = [rec.prepare(replace(SPEC, message=f"restarting {i % 2}")) for i in range(100)]
    writes = [d for d in decided if isinstance(d, Write)]
    assert decided.count("spam_filter") == 75
    assert value(registry, "event_sidecar_events_dropped_total", cause="spam_filter") == 75
    assert [w.event.count for w in writes[-2:]] == [12, 13]
    # One Event per write (a create, or the repeat a PATCH stands for); none for the dropped.
    assert len(built) == len(writes) == 25
