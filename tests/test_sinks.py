"""`sidecar.runtime.sinks`: the in-memory sink answers as the apiserver does."""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.correlate import CorrelatorSettings
from sidecar.core.events.corev1 import Event, InvolvedObject, make_event
from sidecar.core.rules import compile_rules, parse_rules
from sidecar.offline.replay import ReplaySettings, replay
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import MemorySink, NotFound, Refused
from tests.daemon_support import RULES, phase_lines


def an_event() -> Event:
    """A plain core/v1 Event about Pod shop/web-0 (also for tests/test_kube_lookup.py)."""
    return make_event(
        involved=InvolvedObject("Pod", "web-0", "shop", "v1"),
        type="Normal",
        reason="Started",
        message="started",
        component="test",
        host="node-1",
        now=1_700_000_000.0,
        name="web-0.1",
    )


def test_a_patch_of_a_missing_event_is_not_found_as_event_missing() -> None:
    """A PATCH's 404 means the Event expired or was deleted, not that the namespace is gone."""
    sink = MemorySink()
    event = an_event()
    with pytest.raises(NotFound) as missing:
        sink.patch(event, event.repeat_patch())
    assert missing.value.cause == "event_missing"


def test_a_second_create_is_a_conflict() -> None:
    sink = MemorySink()
    event = an_event()
    sink.create(event)
    with pytest.raises(Refused) as conflict:
        sink.create(event)
    assert conflict.value.cause == "conflict"


def test_a_bounded_sink_keeps_the_most_recent_events_and_lists_no_writes() -> None:
    sink = MemorySink(keep=2)
    first, second, third = (replace(an_event(), name=f"web-0.{i}") for i in range(3))
    for event in (first, second):
        sink.create(event)
    sink.patch(first, first.repeat_patch())  # now the most recent
    sink.create(third)
    assert sorted(name for _, name in sink.events) == ["web-0.0", "web-0.2"]
    assert sink.writes == []
    with pytest.raises(NotFound) as expired:  # forgotten, as an expired Event is
        sink.patch(second, second.repeat_patch())
    assert expired.value.cause == "event_missing"


def test_replay_into_a_bounded_sink_retains_a_bounded_number_of_events() -> None:
    # `replay -o none` and `run --dry-run` once kept every Event (786 MB at 1M objects).
    objects, keep = 3000, 50
    rules = compile_rules(parse_rules(RULES, "rules.yaml"))
    lines = b"".join(phase_lines("ns", objects, objects=objects))
    sink = MemorySink(keep=keep)
    settings = ReplaySettings(correlation=CorrelatorSettings(cache_size=keep))
    before = alive_events()
    result = replay([lines], rules, sink, Metrics(CollectorRegistry()), settings=settings)
    assert result.outcomes == {"create": objects}
    assert len(sink.events) == keep
    assert alive_events() - before <= keep


def alive_events() -> int:
    """Event objects reachable in this process (other tests' included)."""
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, Event))


def test_a_bounded_sink_takes_writes_from_many_threads() -> None:
    """`run --dry-run` writes to the memory sink from the poster's `--writes` threads at once;
    two evictions of the same oldest Event once raised KeyError under load."""
    sink = MemorySink(keep=4)
    failures: list[BaseException] = []
    rounds = 3000

    def write(thread: int) -> None:
        try:
            for i in range(rounds):
                event = replace(an_event(), name=f"web-0.{thread}.{i}")
                sink.create(event)
                with contextlib.suppress(NotFound):  # evicted meanwhile: expired, as expected
                    sink.patch(event, event.repeat_patch())
        except BaseException as error:  # any failure fails the test below
            failures.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows at once
    try:
        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert len(sink.events) == 4
