"""`sidecar.sinks`: the in-memory sink answers as the apiserver does."""

from __future__ import annotations

import pytest

from sidecar.events import Event, InvolvedObject, make_event
from sidecar.sinks import MemorySink, NotFound, Refused


def _event() -> Event:
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
    event = _event()
    with pytest.raises(NotFound) as missing:
        sink.patch(event, event.repeat_patch())
    assert missing.value.cause == "event_missing"


def test_a_second_create_is_a_conflict() -> None:
    sink = MemorySink()
    event = _event()
    sink.create(event)
    with pytest.raises(Refused) as conflict:
        sink.create(event)
    assert conflict.value.cause == "conflict"
