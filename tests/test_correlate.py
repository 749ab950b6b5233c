"""The correlator reproduces client-go's events_cache.go numbers, with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.core.correlate import (
    AGGREGATE_PREFIX,
    Correlator,
    CorrelatorSettings,
    Suppressed,
    Write,
)
from sidecar.core.events.corev1 import Event, EventNamer, InvolvedObject, make_event
from sidecar.runtime.checkpoints import Checkpoint, read_checkpoint, write_checkpoint


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pod(name: str = "web-0", namespace: str = "shop") -> InvolvedObject:
    return InvolvedObject("Pod", name, namespace, "v1", uid="u-1")


def event(
    clock: FakeClock,
    namer: EventNamer,
    *,
    message: str = "phase Pending -> Ready",
    reason: str = "PhaseChanged",
    type_: str = "Normal",
    involved: InvolvedObject | None = None,
) -> Event:
    involved = involved or pod()
    return make_event(
        involved=involved,
        type=type_,
        reason=reason,
        message=message,
        component="legacy-controller",
        host="legacy-controller-0",
        now=clock(),
        name=namer(involved.name),
    )


def correlator(clock: FakeClock, **settings: object) -> tuple[Correlator, EventNamer]:
    namer = EventNamer(lambda: int(clock() * 1e9))
    return Correlator(CorrelatorSettings(**settings), namer), namer  # type: ignore[arg-type]


def test_first_event_is_created_and_repeat_is_patched_with_rising_count() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock)
    first = corr.correlate(event(clock, namer))
    assert isinstance(first, Write)
    assert first.patch is None
    assert first.event.count == 1
    clock.now += 5
    second = corr.correlate(event(clock, namer))
    assert isinstance(second, Write)
    assert second.event.name == first.event.name
    assert second.event.count == 2
    assert second.event.first_timestamp == first.event.first_timestamp
    assert second.patch == {
        "count": 2,
        "lastTimestamp": "2023-11-14T22:13:25Z",
        "message": "phase Pending -> Ready",
    }


def test_26th_event_about_one_object_within_a_burst_is_suppressed() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock)
    decisions = [corr.correlate(event(clock, namer)) for _ in range(26)]
    assert all(isinstance(decision, Write) for decision in decisions[:25])
    assert isinstance(decisions[25], Suppressed)
    assert decisions[25].cause == "spam_filter"


def test_spam_filter_refills_one_token_per_300_seconds() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock)
    for _ in range(25):
        corr.correlate(event(clock, namer))
    clock.now += 299
    assert isinstance(corr.correlate(event(clock, namer)), Suppressed)
    clock.now += 1.5
    assert isinstance(corr.correlate(event(clock, namer)), Write)
    assert isinstance(corr.correlate(event(clock, namer)), Suppressed)


def test_count_keeps_rising_under_the_spam_filter() -> None:
    """client-go raises the dedup count before filtering: the next write shows every occurrence."""
    clock = FakeClock()
    corr, namer = correlator(clock)
    for _ in range(40):
        corr.correlate(event(clock, namer))
    clock.now += 300
    decision = corr.correlate(event(clock, namer))
    assert isinstance(decision, Write)
    assert decision.event.count == 41
    assert decision.patch is not None
    assert decision.patch["count"] == 41


def test_spam_bucket_is_per_object_and_type_not_per_reason_by_default() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock)
    for index in range(25):
        corr.correlate(event(clock, namer, reason=f"Reason{index}"))
    assert isinstance(corr.correlate(event(clock, namer, reason="Other")), Suppressed)
    # Another object, and another type on the same object, have their own buckets.
    assert isinstance(corr.correlate(event(clock, namer, involved=pod("web-1"))), Write)
    assert isinstance(corr.correlate(event(clock, namer, type_="Warning")), Write)


def test_spam_key_by_reason_gives_each_reason_its_own_bucket() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock, spam_key_by_reason=True)
    for _ in range(25):
        corr.correlate(event(clock, namer, reason="Noisy"))
    assert isinstance(corr.correlate(event(clock, namer, reason="Noisy")), Suppressed)
    assert isinstance(corr.correlate(event(clock, namer, reason="Quiet")), Write)


def test_spam_burst_and_refill_are_configurable() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock, spam_burst=3, spam_refill_seconds=10)
    results = [corr.correlate(event(clock, namer)) for _ in range(4)]
    assert [type(result) for result in results] == [Write, Write, Write, Suppressed]
    clock.now += 10
    assert isinstance(corr.correlate(event(clock, namer)), Write)


def test_the_10th_distinct_message_aggregates() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock)
    decisions = []
    for index in range(12):
        clock.now += 1
        decisions.append(corr.correlate(event(clock, namer, message=f"quota cpu {index}")))
    writes = [decision for decision in decisions if isinstance(decision, Write)]
    assert len(writes) == 12
    assert not any(write.aggregated for write in writes[:9])
    assert [write.patch is None for write in writes[:9]] == [True] * 9
    tenth, eleventh, twelfth = writes[9], writes[10], writes[11]
    assert tenth.aggregated
    assert tenth.patch is None
    assert tenth.event.message == AGGREGATE_PREFIX + "quota cpu 9"
    assert tenth.event.count == 1
    # Later similar events PATCH the combined Event.
    assert eleventh.aggregated
    assert eleventh.event.name == tenth.event.name
    assert eleventh.event.count == 2
    assert eleventh.patch == {
        "count": 2,
        "lastTimestamp": "2023-11-14T22:13:31Z",
        "message": AGGREGATE_PREFIX + "quota cpu 10",
    }
    assert twelfth.event.count == 3


def test_identical_messages_never_aggregate() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock, spam_burst=1000)
    decisions = [corr.correlate(event(clock, namer)) for _ in range(50)]
    assert all(isinstance(d, Write) and not d.aggregated for d in decisions)
    last = decisions[-1]
    assert isinstance(last, Write)
    assert last.event.count == 50


def test_aggregation_window_slides_and_expires_after_600_seconds() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock)
    for index in range(9):
        corr.correlate(event(clock, namer, message=f"m{index}"))
        clock.now += 60  # each arrival keeps the window open
    decision = corr.correlate(event(clock, namer, message="m9"))
    assert isinstance(decision, Write)
    assert decision.aggregated
    clock.now += 601
    fresh = corr.correlate(event(clock, namer, message="m10"))
    assert isinstance(fresh, Write)
    assert not fresh.aggregated


def test_aggregation_threshold_is_configurable() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock, max_similar_events=3)
    kinds = [corr.correlate(event(clock, namer, message=f"m{i}")) for i in range(3)]
    assert [isinstance(k, Write) and k.aggregated for k in kinds] == [False, False, True]


def test_aggregate_message_is_truncated_to_the_limit() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock, max_similar_events=2)
    corr.correlate(event(clock, namer, message="x"))
    decision = corr.correlate(event(clock, namer, message="界" * 400))
    assert isinstance(decision, Write)
    encoded = decision.event.message.encode()
    assert len(encoded) <= 1024
    assert decision.event.message.startswith(AGGREGATE_PREFIX)


def test_caches_are_bounded_lrus() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock, cache_size=2)
    first = corr.correlate(event(clock, namer, involved=pod("a")))
    corr.correlate(event(clock, namer, involved=pod("b")))
    corr.correlate(event(clock, namer, involved=pod("c")))
    again = corr.correlate(event(clock, namer, involved=pod("a")))
    assert isinstance(first, Write)
    assert isinstance(again, Write)
    # "a" was evicted, so its repeat is a fresh Event, as in client-go.
    assert again.patch is None
    assert again.event.name != first.event.name


def _stream() -> list[tuple[float, str, str]]:
    """(time, object, message): repeats, 12 distinct messages about one object (aggregated from
    the 10th), and an expired aggregation window; one second apart unless said."""
    rows: list[tuple[float, str, str]] = []
    now = 1_700_000_000.0
    for i in range(40):
        now += 1
        if i == 30:
            now += 601  # the window of web-0's similar Events expires
        if i % 3 == 0:
            rows.append((now, "web-1", "back-off restarting"))  # repeats of one Event
        else:
            rows.append((now, "web-0", f"probe failed: attempt {i % 13}"))
    return rows


def _decide(corr: Correlator, namer: EventNamer, clock: FakeClock, rows: object) -> list[object]:
    decisions: list[object] = []
    for now, name, message in rows:  # type: ignore[attr-defined]
        clock.now = now
        decision = corr.correlate(event(clock, namer, message=message, involved=pod(name)))
        assert isinstance(decision, Write)
        decisions.append((decision.event, decision.patch, decision.aggregated))
    return decisions


@pytest.mark.parametrize("cut", [1, 5, 12, 20, 29, 31, 39])
def test_a_restored_state_continues_every_event_as_if_never_restarted(
    cut: int, tmp_path: Path
) -> None:
    rows = _stream()
    clock = FakeClock()
    # Names from the line's time, as `run`'s LineNamer: the same line, the same name.
    whole, namer = correlator(clock)
    expected = _decide(whole, namer, clock, rows)

    before, namer = correlator(clock)
    _decide(before, namer, clock, rows[:cut])
    path = tmp_path / "checkpoint.json"
    write_checkpoint(path, Checkpoint(correlation=before.export()))
    saved = read_checkpoint(path)
    assert saved is not None

    after, namer = correlator(clock)
    after.restore(saved.correlation)
    assert _decide(after, namer, clock, rows[cut:]) == expected[cut:]


def test_without_the_restored_state_a_repeat_would_start_a_second_event() -> None:
    clock = FakeClock()
    before, namer = correlator(clock)
    first = before.correlate(event(clock, namer))
    clock.now += 1
    fresh, namer = correlator(clock)
    assert isinstance(restarted := fresh.correlate(event(clock, namer)), Write)
    assert (restarted.event.count, restarted.patch) == (1, None)
    restored, namer = correlator(clock)
    restored.restore(before.export())
    decision = restored.correlate(event(clock, namer))
    assert isinstance(decision, Write) and isinstance(first, Write)
    assert (decision.event.name, decision.event.count) == (first.event.name, 2)


def test_the_exported_state_is_bounded_by_the_cache_size() -> None:
    clock = FakeClock()
    corr, namer = correlator(clock, cache_size=8)
    for i in range(50):
        clock.now += 1
        corr.correlate(event(clock, namer, involved=pod(f"web-{i}")))
    state = corr.export()
    assert len(state.observed) == len(state.similar) == 8
    again, _ = correlator(clock, cache_size=4)
    again.restore(state)
    assert len(again.export().observed) == 4
