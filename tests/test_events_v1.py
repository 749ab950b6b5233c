"""events.k8s.io/v1 bodies and series as client-go's `tools/events` writes them, and the
ModernRecorder that keeps our aggregation and spam filter in front of them."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from sidecar.correlate import Correlator, CorrelatorSettings
from sidecar.events import EventNamer, InvalidEvent, InvolvedObject
from sidecar.events_v1 import SeriesCache, make_modern_event, micro_time
from sidecar.metrics import Metrics
from sidecar.model import EventSpec, ObjectTarget
from sidecar.recorder_v1 import ModernRecorder
from sidecar.sinks import MemorySink

T0 = 1_700_000_000.0
POD = InvolvedObject("Pod", "web-0", "shop", "v1", "uid-1")
NODE = InvolvedObject("Node", "n1", "", "v1", "uid-2")


def _event(note: str = "restarting", now: float = T0, name: str = "web-0.1") -> object:
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


def test_second_occurrence_patches_count_2_later_ones_wait_for_the_heartbeat() -> None:
    cache = SeriesCache(finish_seconds=360, refresh_seconds=1800)
    first = cache.observe(_event(), T0)  # type: ignore[arg-type]
    assert first is not None and first.create
    second = cache.observe(_event("another note", T0 + 1, "web-0.2"), T0 + 1)  # type: ignore[arg-type]
    assert second is not None and not second.create
    assert second.event.name == "web-0.1" and second.event.note == "restarting"
    assert second.event.series_patch() == {
        "series": {"count": 2, "lastObservedTime": micro_time(T0 + 1)}
    }
    cache.written(second.event, T0 + 1)
    assert cache.observe(_event(now=T0 + 2), T0 + 2) is None  # type: ignore[arg-type]
    assert cache.observe(_event(now=T0 + 3), T0 + 3) is None  # type: ignore[arg-type]
    assert cache.due(T0 + 60) == []
    (final,) = cache.due(T0 + 3 + 361)
    assert final.event.series_count == 4 and not final.create
    assert len(cache) == 0
    again = cache.observe(_event(now=T0 + 400), T0 + 400)  # type: ignore[arg-type]
    assert again is not None and again.create


def test_live_series_are_refreshed_and_quiet_singletons_forgotten() -> None:
    cache = SeriesCache(finish_seconds=360, refresh_seconds=1800)
    cache.observe(_event(), T0)  # type: ignore[arg-type]
    other = _event(now=T0)
    cache.observe(other, T0)  # type: ignore[arg-type]
    assert cache.pending()[0].event.series_count == 2
    for minute in range(1, 40):
        cache.observe(_event(now=T0 + minute * 60), T0 + minute * 60)  # type: ignore[arg-type]
        if minute == 31:
            (refresh,) = cache.due(T0 + minute * 60)
            assert refresh.event.series_count == 33
            cache.written(refresh.event, T0 + minute * 60)
    assert cache.due(T0 + 39 * 60) == []


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
