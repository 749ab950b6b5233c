"""Concurrent writes against the real apiserver: every Event stored, with the right count."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

from prometheus_client import CollectorRegistry

from sidecar.correlate import Correlator, CorrelatorSettings
from sidecar.kube import connect
from sidecar.metrics import Metrics
from sidecar.model import LOOKUP_RESULTS, EventSpec, ObjectTarget
from sidecar.poster import LineNamer, Poster, Posting, QueueItem
from sidecar.recorder import Recorder
from tests.controlplane import ControlPlane

NAMESPACE = "concurrent-writes"
OBJECTS = 12
REASONS = 4
REPEATS = 5


async def test_many_events_written_eight_at_a_time_are_stored_with_their_counts(
    control_plane: ControlPlane,
) -> None:
    control_plane.kubectl("create", "namespace", NAMESPACE)
    metrics = Metrics(CollectorRegistry())
    sink = connect(kubeconfig=str(control_plane.kubeconfig), metrics=metrics)
    namer = LineNamer("concurrent-test", "h")
    recorder = Recorder(
        sink=sink,
        correlator=Correlator(CorrelatorSettings(), namer),
        namer=namer,
        metrics=metrics,
        component="concurrent-test",
        host="h",
        clock=time.time,
    )
    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    # Each (object, reason) repeated: a create then PATCHes, which must follow it in order.
    for repeat in range(REPEATS):
        for obj in range(OBJECTS):
            for reason in range(REASONS):
                spec = EventSpec(
                    rule="r",
                    target=ObjectTarget("Pod", f"web-{obj}", NAMESPACE, "v1"),
                    type="Normal",
                    reason=f"Reason{reason}",
                    message="same message",
                    time=1_700_000_000.0 + repeat,
                )
                events.put_nowait(Posting(spec, time.monotonic()))
    poster = Poster(events, recorder, namer, metrics, lambda _: None, writes=8)
    task = asyncio.create_task(poster.run())
    try:
        await asyncio.wait_for(events.join(), 120)
    finally:
        task.cancel()
        sink.close()
    assert poster.outcomes == {
        "create": OBJECTS * REASONS,
        "patch": OBJECTS * REASONS * (REPEATS - 1),
    }
    items = json.loads(
        control_plane.kubectl("get", "events", "-n", NAMESPACE, "-o", "json").stdout
    )["items"]
    counts = Counter(
        (item["involvedObject"]["name"], item["reason"], item["count"]) for item in items
    )
    assert counts == Counter(
        {(f"web-{obj}", f"Reason{r}", REPEATS): 1 for obj in range(OBJECTS) for r in range(REASONS)}
    )


async def test_new_objects_are_looked_up_ahead_once_each_and_their_uids_written(
    control_plane: ControlPlane,
) -> None:
    """A burst about objects not seen before: each is looked up once (the poster's look-ahead
    hands its answer to correlation, which does not ask again) and each Event carries the
    object's uid."""
    namespace = "lookahead"
    control_plane.kubectl("create", "namespace", namespace)
    names = [f"cm-{n}" for n in range(24)]
    for name in names:
        control_plane.kubectl("create", "configmap", name, "-n", namespace)
    uids = {
        item["metadata"]["name"]: item["metadata"]["uid"]
        for item in json.loads(
            control_plane.kubectl("get", "configmaps", "-n", namespace, "-o", "json").stdout
        )["items"]
    }
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    sink = connect(kubeconfig=str(control_plane.kubeconfig), metrics=metrics)
    namer = LineNamer("lookahead-test", "h")
    recorder = Recorder(
        sink=sink,
        correlator=Correlator(CorrelatorSettings(), namer),
        namer=namer,
        metrics=metrics,
        component="lookahead-test",
        host="h",
        clock=time.time,
    )
    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    for repeat in range(2):
        for name in names:
            spec = EventSpec(
                rule="r",
                target=ObjectTarget("ConfigMap", name, namespace, "v1", ""),
                type="Normal",
                reason="Seen",
                message=f"round {repeat}",
                time=1_700_000_000.0 + repeat,
            )
            events.put_nowait(Posting(spec, time.monotonic()))
    poster = Poster(events, recorder, namer, metrics, lambda _: None, writes=8)
    task = asyncio.create_task(poster.run())
    try:
        await asyncio.wait_for(events.join(), 120)
    finally:
        task.cancel()
        sink.close()
    lookups = "event_sidecar_object_lookups_total"
    # The second round's Postings were taken ahead with the first's: they share its look-up.
    assert registry.get_sample_value(lookups, {"result": "found"}) == len(names)
    assert sum(
        registry.get_sample_value(lookups, {"result": result}) or 0.0 for result in LOOKUP_RESULTS
    ) == len(names)
    items = json.loads(
        control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    )["items"]
    assert len(items) == 2 * len(names)
    assert {(i["involvedObject"]["name"], i["involvedObject"]["uid"]) for i in items} == set(
        uids.items()
    )
