"""Event bodies follow client-go's recorder and the apiserver's validation to the letter."""

from __future__ import annotations

import uuid

import pytest

from sidecar.core.events.corev1 import (
    EventNamer,
    InvalidEvent,
    InvolvedObject,
    make_event,
    rfc3339,
    truncate_message,
)

NOW = 1_700_000_000.75
NANOS = 1_700_000_000_123_456_789


def build(involved: InvolvedObject, **overrides: str) -> dict[str, object]:
    fields = {"type": "Normal", "reason": "QuotaExpanded", "message": "cpu 1 -> 2"}
    fields.update(overrides)
    namer = EventNamer(lambda: NANOS)
    return make_event(
        involved=involved,
        component="quota-autoscaler",
        host="quota-autoscaler-0",
        now=NOW,
        name=namer(involved.name),
        **fields,
    ).to_body()


def test_body_has_every_field_client_go_writes() -> None:
    involved = InvolvedObject(
        "ResourceQuotaAutoscaler",
        "team-a",
        "team-a",
        "autoscaling.example.com/v1",
        uid="0b6e-uid",
        resource_version="42",
    )
    assert build(involved) == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"team-a.{NANOS:x}", "namespace": "team-a"},
        "involvedObject": {
            "kind": "ResourceQuotaAutoscaler",
            "name": "team-a",
            "namespace": "team-a",
            "apiVersion": "autoscaling.example.com/v1",
            "uid": "0b6e-uid",
            "resourceVersion": "42",
        },
        "reason": "QuotaExpanded",
        "message": "cpu 1 -> 2",
        "type": "Normal",
        "count": 1,
        "firstTimestamp": "2023-11-14T22:13:20Z",
        "lastTimestamp": "2023-11-14T22:13:20Z",
        "source": {"component": "quota-autoscaler", "host": "quota-autoscaler-0"},
        "reportingComponent": "quota-autoscaler",
        "reportingInstance": "quota-autoscaler-0",
    }
    assert NANOS == 0x17979CFE3D85CD15


def test_cluster_scoped_object_events_go_to_default() -> None:
    body = build(InvolvedObject("Node", "worker-1", api_version="v1"))
    assert body["metadata"] == {"name": f"worker-1.{NANOS:x}", "namespace": "default"}
    assert "namespace" not in body["involvedObject"]  # type: ignore[operator]


def test_no_event_time_action_or_series() -> None:
    body = build(InvolvedObject("Pod", "a", "b"))
    assert not {"eventTime", "action", "series", "related"} & set(body)


@pytest.mark.parametrize("bad_type", ["Info", "normal", "Error", ""])
def test_only_normal_and_warning(bad_type: str) -> None:
    with pytest.raises(InvalidEvent, match="is not Normal or Warning"):
        build(InvolvedObject("Pod", "a", "b"), type=bad_type)


def test_reason_longer_than_128_is_refused() -> None:
    build(InvolvedObject("Pod", "a", "b"), reason="R" * 128)
    with pytest.raises(InvalidEvent, match="1 to 128"):
        build(InvolvedObject("Pod", "a", "b"), reason="R" * 129)


def test_message_is_truncated_to_1024_bytes_of_valid_utf8() -> None:
    assert truncate_message("a" * 1024) == "a" * 1024
    assert truncate_message("a" * 1025) == "a" * 1024
    # 3-byte characters: 341 fit (1023 bytes); the 342nd would split.
    cut = truncate_message("扩" * 400)
    assert cut == "扩" * 341
    assert len(cut.encode()) == 1023
    mixed = truncate_message("a" + "扩" * 400)
    assert len(mixed.encode()) == 1024
    mixed.encode().decode("utf-8")  # still valid


def test_timestamps_are_whole_seconds_utc() -> None:
    assert rfc3339(1_700_000_000.999) == "2023-11-14T22:13:20Z"


def test_names_never_repeat_within_one_clock_tick() -> None:
    namer = EventNamer(lambda: 1000)
    assert [namer("a"), namer("a"), namer("b")] == ["a.3e8", "a.3e9", "b.3ea"]


def test_skipped_names_advance_as_drawn_ones() -> None:
    """The correlator skips the names it does not use; the next one must be as if drawn."""
    drawn, skipped = EventNamer(lambda: 1000), EventNamer(lambda: 1000)
    for _ in range(3):
        drawn("web-0")
    skipped("web-0")
    skipped.skip(2)
    assert skipped("web-0") == drawn("web-0") == "web-0.3eb"


def test_name_falls_back_to_uuid_when_not_a_dns_subdomain() -> None:
    fixed = uuid.UUID("12345678-1234-4234-8234-123456789abc")
    namer = EventNamer(lambda: 1, lambda: fixed)
    assert namer("Upper_Case") == str(fixed)
    assert namer("x" * 252) == str(fixed)  # 252 + ".2" is 254 > 253
    assert namer("ok.name-1") == "ok.name-1.3"
