"""events.k8s.io/v1 bodies and series as client-go's `tools/events` writes them, and the
ModernRecorder that keeps our aggregation and spam filter in front of them."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.correlate import Correlator, CorrelatorSettings
from sidecar.core.events.corev1 import EventNamer, InvalidEvent, InvolvedObject
from sidecar.core.events.eventsv1 import ModernEvent, make_modern_event, micro_time
from sidecar.core.events.series import SeriesCache, SeriesWrite, parse_series_row, series_row
from sidecar.model import EventSpec, ObjectTarget
from sidecar.recording.recorder_eventsv1 import ModernRecorder
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink

T0 = 1_700_000_000.0
POD = InvolvedObject("Pod", "web-0", "shop", "v1", "uid-1")
NODE = InvolvedObject("Node", "n1", "", "v1", "uid-2")


def _event(note: str = "restarting", now: float = T0, name: str = "web-0.1") -> ModernEvent:
    return make_modern_event(
        regarding=POD,
        related=NODE,
        type="Warning",
        reason="BackOff",
        action="Restarting",
        note=note,
        controller="quota-autoscaler",
        host="pod-7",
        now=now,
        name=name,
    )


def test_body_has_the_fields_client_go_writes_and_no_legacy_ones() -> None:
    body = make_modern_event(
        regarding=POD,
        related=NODE,
        type="Warning",
        reason="BackOff",
        action="Restarting",
        note="x" * 2000,
        controller="quota-autoscaler",
        host="pod-7",
        now=T0 + 0.123456,
        name="web-0.1",
    ).to_body()
    assert body["apiVersion"] == "events.k8s.io/v1"
    assert body["eventTime"] == "2023-11-14T22:13:20.123456Z"
    assert body["reportingController"] == "quota-autoscaler"
    assert body["reportingInstance"] == "quota-autoscaler-pod-7"
    assert body["regarding"]["uid"] == "uid-1"
    assert body["related"]["kind"] == "Node"
    assert body["action"] == "Restarting"
    assert len(body["note"]) == 1024
    assert body["metadata"] == {"name": "web-0.1", "namespace": "shop"}
    for legacy in ("count", "firstTimestamp", "lastTimestamp", "source", "series"):
        assert legacy not in body


def test_micro_time_has_six_fraction_digits() -> None:
    assert micro_time(T0) == "2023-11-14T22:13:20.000000Z"


@pytest.mark.parametrize(
    ("field", "value"),
    [("action", ""), ("action", "A" * 129), ("controller", "not a name"), ("type", "Info")],
)
def test_what_the_strict_validation_refuses_is_refused_first(field: str, value: str) -> None:
    arguments = {
        "regarding": POD,
        "related": None,
        "type": "Normal",
        "reason": "Scaled",
        "action": "Scaling",
        "note": "",
        "controller": "c",
        "host": "h",
        "now": T0,
        "name": "n",
    }
    arguments[field] = value
    with pytest.raises(InvalidEvent):
        make_modern_event(**arguments)  # type: ignore[arg-type]


def _observe(cache: SeriesCache, note: str = "restarting", at: float = T0) -> list[SeriesWrite]:
    return cache.observe(_event(note, at, f"web-0.{int(at)}"), at)


def test_second_occurrence_patches_count_2_later_ones_wait_for_the_heartbeat() -> None:
    cache = SeriesCache(finish_seconds=360, refresh_seconds=1800)
    [first] = _observe(cache)
    assert first.create and first.occurrence
    [second] = _observe(cache, "another note", T0 + 1)
    assert not second.create and second.occurrence
    assert second.event.name == f"web-0.{int(T0)}" and second.event.note == "restarting"
    assert second.event.series_patch() == {
        "series": {"count": 2, "lastObservedTime": micro_time(T0 + 1)}
    }
    assert _observe(cache, at=T0 + 2) == []
    assert _observe(cache, at=T0 + 3) == []
    assert cache.due(T0 + 60) == []
    [final] = cache.due(T0 + 3 + 361)
    assert final.event.series_count == 4 and not final.create and not final.occurrence
    assert cache.due(T0 + 3 + 362) == []


def test_a_series_ends_on_the_lines_clock_whenever_the_heartbeat_runs() -> None:
    cache = SeriesCache(finish_seconds=360, refresh_seconds=1800)
    for second in range(3):
        _observe(cache, at=T0 + second)
    # No heartbeat ran: the occurrence 361 s after the last one still ends the series, with
    # its final count, and starts a new Event.
    final, again = _observe(cache, at=T0 + 2 + 361)
    assert (final.create, final.occurrence, final.event.series_count) == (False, False, 3)
    assert again.create and again.event.name == f"web-0.{int(T0 + 363)}"
    # A backlog: the heartbeat's wall clock is far ahead, but the lines are 10 s apart, so the
    # series goes on (its count written as final meanwhile, nothing forgotten).
    cache = SeriesCache(finish_seconds=360, refresh_seconds=1800)
    _observe(cache, at=T0)
    _observe(cache, at=T0 + 10)
    _observe(cache, at=T0 + 20)
    [written] = cache.due(T0 + 86_400)
    assert written.event.series_count == 3
    assert _observe(cache, at=T0 + 30) == []
    [written] = cache.pending(T0 + 86_400)
    assert written.event.series_count == 4 and written.event.name == f"web-0.{int(T0)}"


def test_live_series_are_refreshed() -> None:
    cache = SeriesCache(finish_seconds=360, refresh_seconds=1800)
    for _ in range(3):
        _observe(cache)
    assert cache.pending(T0)[0].event.series_count == 3
    for minute in range(1, 40):
        _observe(cache, at=T0 + minute * 60)
        if minute == 29:
            assert cache.due(T0 + minute * 60) == []
        if minute == 30:
            (refresh,) = cache.due(T0 + minute * 60)
            assert refresh.event.series_count == 33
    assert cache.due(T0 + 39 * 60) == []


def test_an_evicted_series_gets_its_final_count() -> None:
    cache = SeriesCache(size=1)
    _observe(cache)
    _observe(cache)
    _observe(cache)
    other = replace(_event(now=T0 + 5), regarding=NODE)
    create, final = cache.observe(other, T0 + 5)
    assert create.create and create.event.regarding == NODE
    assert (final.create, final.event.regarding, final.event.series_count) == (False, POD, 3)
    assert len(cache) == 1


def test_a_new_resource_version_of_the_object_continues_the_series() -> None:
    cache = SeriesCache()
    _observe(cache)
    newer = replace(_event(now=T0 + 1), regarding=replace(POD, resource_version="42"))
    [second] = cache.observe(newer, T0 + 1)
    assert not second.create and second.event.series_count == 2


def test_exported_series_restore_their_counts_and_what_is_pending() -> None:
    cache = SeriesCache()
    for second in range(5):  # created, PATCHed to 2, then 3 more only in memory
        _observe(cache, at=T0 + second)
    other = replace(_event(now=T0), regarding=NODE)
    cache.observe(other, T0)
    saved = cache.export()
    assert [(r.event.regarding, r.event.series_count, r.stored) for r in saved] == [
        (POD, 5, 2),
        (NODE, 0, 1),
    ]
    rows = [series_row(record) for record in saved]
    assert [parse_series_row(orjson.loads(orjson.dumps(row))) for row in rows] == list(saved)

    restored = SeriesCache()
    restored.restore(saved)
    assert restored.export() == saved
    [pending] = restored.pending(T0 + 10)
    assert (pending.event.name, pending.event.series_count) == (f"web-0.{int(T0)}", 5)
    assert restored.pending(T0 + 11) == []
    # A repeat read again after the restart continues the series, under its first name.
    assert _observe(restored, at=T0 + 5) == []
    [final] = restored.pending(T0 + 12)
    assert (final.event.name, final.event.series_count) == (f"web-0.{int(T0)}", 6)


@pytest.mark.parametrize(
    "change",
    [
        {"count": 0},
        {"stored": 0},
        {"stored": 6},
        {"count": True},
        {"regarding": ["Pod", "web-0"]},
        {"event_time": "now"},
        {"last_observed": float("inf")},
        {"note": None},
    ],
)
def test_a_malformed_series_row_is_refused(change: dict[str, object]) -> None:
    cache = SeriesCache()
    for second in range(5):
        _observe(cache, at=T0 + second)
    [record] = cache.export()
    with pytest.raises((TypeError, ValueError, KeyError)):
        parse_series_row({**series_row(record), **change})


def _recorder(sink: MemorySink, clock: list[float]) -> tuple[ModernRecorder, CollectorRegistry]:
    registry = CollectorRegistry()
    now = lambda: clock[0]  # noqa: E731
    recorder = ModernRecorder(
        series=SeriesCache(),
        sink=sink,
        correlator=Correlator(CorrelatorSettings(spam_burst=5), EventNamer()),
        namer=EventNamer(),
        metrics=Metrics(registry),
        component="quota-autoscaler",
        host="pod-7",
        clock=now,
    )
    return recorder, registry


SPEC = EventSpec(
    rule="r",
    target=ObjectTarget("Pod", "web-0", "shop", "v1"),
    type="Warning",
    reason="BackOff",
    message="restarting",
    time=None,
    action="Restarting",
    related=ObjectTarget("Node", "n1", ""),
)


def test_recorder_writes_a_series_behind_our_spam_filter_and_flushes_it() -> None:
    sink, clock = MemorySink(), [T0]
    recorder, registry = _recorder(sink, clock)
    outcomes = [recorder.record(SPEC) for _ in range(7)]
    assert outcomes == [
        "create",
        "patch",
        "series",
        "series",
        "series",
        "spam_filter",
        "spam_filter",
    ]
    (stored,) = sink.modern.values()
    assert stored.series_count == 2 and stored.related is not None
    assert recorder.flush() == 1
    (stored,) = sink.modern.values()
    assert stored.series_count == 5
    assert recorder.flush() == 0
    sample = registry.get_sample_value
    assert sample("event_sidecar_events_dropped_total", {"cause": "spam_filter"}) == 2
    labels = {"reason": "BackOff", "type": "Warning"}
    assert sample("event_sidecar_events_emitted_total", {**labels, "write": "series"}) == 3


def test_an_expired_series_event_is_created_again_with_its_count() -> None:
    sink, clock = MemorySink(), [T0]
    recorder, _ = _recorder(sink, clock)
    recorder.record(SPEC)
    sink.modern.clear()
    assert recorder.record(SPEC) == "create"
    (stored,) = sink.modern.values()
    assert stored.series_count == 2


def test_plan_decides_without_writing_and_write_makes_each_decision() -> None:
    sink, clock = MemorySink(), [T0]
    recorder, _ = _recorder(sink, clock)
    planned = [recorder.plan(SPEC) for _ in range(3)]
    assert planned[2] == "series"
    [create], [patch] = [p for p in planned[:2] if isinstance(p, tuple)]
    assert isinstance(create, SeriesWrite) and isinstance(patch, SeriesWrite)
    # Decided in order, nothing written yet: the writes are the poster's, on other threads.
    assert sink.writes == []
    assert [(w.create, w.event.series_count) for w in (create, patch)] == [(True, 0), (False, 2)]
    assert recorder.write_key(create) == ("shop", "Pod", "shop", "web-0")
    assert [recorder.write(create), recorder.write(patch)] == ["create", "patch"]
    [pending] = recorder.tick("pending")
    assert recorder.tick("pending") == ()
    assert recorder.write(pending) == "patch"
    (stored,) = sink.modern.values()
    assert stored.series_count == 3
    [saved] = recorder.export_series()
    assert (saved.event.series_count, saved.stored) == (3, 3)
