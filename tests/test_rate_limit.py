"""Writes against a real apiserver that limits Events (the `EventRateLimit` admission plugin):
what is stored, dropped and delayed adds up, Warnings are preferred, nothing is lost silently."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.correlate import Correlator, CorrelatorSettings
from sidecar.kube import connect
from sidecar.model import EventSpec, ObjectTarget, RetrySettings
from sidecar.recording.naming import LineNamer
from sidecar.recording.poster import Poster
from sidecar.recording.queue import Posting, QueueItem
from sidecar.recording.recorder import Recorder
from sidecar.runtime.metrics import Metrics
from tests.controlplane import ControlPlane, event_rate_limit_args
from tests.test_poster_kube import drain

pytestmark = pytest.mark.controlplane

NAMESPACE = "limited"
OBJECTS = 3
PER_OBJECT = 10


@pytest.fixture(scope="module")
def limited_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """Its own etcd and kube-apiserver, whose EventRateLimit lets each (source, object) write 3
    Events at once and 1 a second after that."""
    folder: Path = tmp_path_factory.mktemp("eventratelimit")
    limits = [
        {"type": "Namespace", "qps": 20, "burst": 50},
        {"type": "SourceAndObject", "qps": 1, "burst": 3},
    ]
    plane = ControlPlane(
        extra_apiserver_args=event_rate_limit_args(folder, limits), ready_timeout=120.0
    ).start()
    try:
        plane.kubectl("create", "namespace", NAMESPACE)
        yield plane
    finally:
        plane.stop()


def spec(obj: int, n: int) -> EventSpec:
    warning = n % 2 == 1
    return EventSpec(
        rule="r",
        target=ObjectTarget("Pod", f"web-{obj}", NAMESPACE, "v1"),
        type="Warning" if warning else "Normal",
        reason=f"{'Failed' if warning else 'Pulled'}{n}",
        message=f"event {n} about web-{obj}",
        time=1_700_000_000.0 + n,
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_rate_limited_events_are_stored_delayed_or_dropped_and_counted(
    limited_plane: ControlPlane,
) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    sink = connect(kubeconfig=str(limited_plane.kubeconfig), metrics=metrics)
    namer = LineNamer("limited-test", "h")
    recorder = Recorder(
        sink=sink,
        correlator=Correlator(CorrelatorSettings(), namer),
        namer=namer,
        metrics=metrics,
        component="limited-test",
        host="h",
        clock=time.time,
        retry=RetrySettings(
            max_tries=12, interval_seconds=1.0, backoff_seconds=0.5, backoff_max_seconds=2.0
        ),
    )
    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    for n in range(PER_OBJECT):
        for obj in range(OBJECTS):
            events.put_nowait(Posting(spec(obj, n), time.monotonic()))
    poster = Poster(events, recorder, namer, metrics, lambda _: None, writes=8)
    await drain(poster, sink)

    stored = json.loads(
        limited_plane.kubectl("get", "events", "-n", NAMESPACE, "-o", "json").stdout
    )["items"]
    produced = OBJECTS * PER_OBJECT
    dropped = sum(
        value(registry, "event_sidecar_events_dropped_total", cause=cause)
        for cause in ("rate_limited", "retries_exhausted", "spam_filter", "rejected")
    )
    rate_limited = value(registry, "event_sidecar_events_dropped_total", cause="rate_limited")
    delayed = value(registry, "event_sidecar_events_delayed_total", cause="rate_limited")
    print(f"produced {produced}, stored {len(stored)}, dropped {dropped}, delayed {delayed}")
    # The plugin did limit: some Normals dropped, some Warnings waited.
    assert rate_limited > 0
    assert delayed > 0
    # Nothing lost silently: every Event is either stored (once, count 1) or counted dropped.
    assert len(stored) + dropped == produced
    assert all(item["count"] == 1 for item in stored)
    assert poster.outcomes.get("create", 0) == len(stored)
    # Warnings are preferred: every one of them got through.
    warnings = [item for item in stored if item["type"] == "Warning"]
    assert len(warnings) == OBJECTS * PER_OBJECT // 2
    # Only Normal Events were given up on.
    assert rate_limited == produced - len(stored)
