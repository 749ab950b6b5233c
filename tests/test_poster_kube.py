"""Concurrent writes against the real apiserver: every Event stored, with the right count, in
core/v1 and events.k8s.io/v1 mode."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter

from kubernetes import client
from prometheus_client import CollectorRegistry

from sidecar.core.correlate import Correlator, CorrelatorSettings
from sidecar.core.events.corev1 import InvolvedObject
from sidecar.core.events.series import SeriesCache
from sidecar.kube import KubeSink, connect
from sidecar.kube.sender import KubeSender
from sidecar.model import LOOKUP_RESULTS, EventSpec, ObjectTarget
from sidecar.recording.naming import LineNamer
from sidecar.recording.poster import Poster
from sidecar.recording.queue import Mark, Posting, QueueItem, Tick
from sidecar.recording.recorder import Recorder
from sidecar.recording.recorder_eventsv1 import ModernRecorder
from sidecar.runtime.checkpoints import Checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import Send, Sender
from tests.controlplane import ControlPlane

NAMESPACE = "concurrent-writes"
OBJECTS = 12
REASONS = 4
REPEATS = 5


def core_recorder(
    control_plane: ControlPlane, metrics: Metrics, component: str
) -> tuple[KubeSink, LineNamer, Recorder]:
    """A core/v1 recorder writing to the control plane, as `run` builds one."""
    sink = connect(kubeconfig=str(control_plane.kubeconfig), metrics=metrics)
    namer = LineNamer(component, "h")
    recorder = Recorder(
        sink=sink,
        correlator=Correlator(CorrelatorSettings(), namer),
        namer=namer,
        metrics=metrics,
        component=component,
        host="h",
        clock=time.time,
    )
    return sink, namer, recorder


def round_of_specs(namespace: str, repeat: int, message: str) -> list[EventSpec]:
    """One round: every (object, reason) once, at second `repeat`; repeated rounds make each
    a create then PATCHes, which must follow it in order."""
    return [
        EventSpec(
            rule="r",
            target=ObjectTarget("Pod", f"web-{obj}", namespace, "v1"),
            type="Normal",
            reason=f"Reason{reason}",
            message=message,
            time=1_700_000_000.0 + repeat,
        )
        for obj in range(OBJECTS)
        for reason in range(REASONS)
    ]


def _writer_threads() -> set[int | None]:
    return {t.ident for t in threading.enumerate() if "write" in t.name}


class _InFlight:
    """A `Sender` counting the most requests it had in flight at once."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.now = self.most = 0

    async def send(self, request: Send) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.sender.send(request)
        finally:
            self.now -= 1

    async def resolve(self, target: ObjectTarget) -> InvolvedObject:
        return await self.sender.resolve(target)

    async def close(self) -> None:
        await self.sender.close()


async def drain(poster: Poster, sink: KubeSink) -> None:
    """Run `poster` until everything queued is written, then stop it and close its connections
    and `sink`'s."""
    task = asyncio.create_task(poster.run())
    try:
        await asyncio.wait_for(poster.events.join(), 120)
    finally:
        task.cancel()
        await asyncio.wait([task])
        await poster.close()
        sink.close()


async def test_many_events_written_eight_at_a_time_are_stored_with_their_counts(
    control_plane: ControlPlane,
) -> None:
    control_plane.kubectl("create", "namespace", NAMESPACE)
    metrics = Metrics(CollectorRegistry())
    sink, namer, recorder = core_recorder(control_plane, metrics, "concurrent-test")
    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    # Each (object, reason) repeated: a create then PATCHes, which must follow it in order.
    for repeat in range(REPEATS):
        for spec in round_of_specs(NAMESPACE, repeat, "same message"):
            events.put_nowait(Posting(spec, time.monotonic()))
    # By default the poster writes through the sink's own sender: aiohttp, no writer threads.
    writers = _writer_threads()
    assert isinstance(Poster(asyncio.Queue(), recorder, namer, metrics, print).sender, KubeSender)
    sender = _InFlight(sink.sender(8))
    poster = Poster(events, recorder, namer, metrics, lambda _: None, writes=8, sender=sender)
    await drain(poster, sink)
    assert poster.outcomes == {
        "create": OBJECTS * REASONS,
        "patch": OBJECTS * REASONS * (REPEATS - 1),
    }
    assert sender.most == 8
    assert _writer_threads() == writers
    items = json.loads(
        control_plane.kubectl("get", "events", "-n", NAMESPACE, "-o", "json").stdout
    )["items"]
    counts = Counter(
        (item["involvedObject"]["name"], item["reason"], item["count"]) for item in items
    )
    assert counts == Counter(
        {(f"web-{obj}", f"Reason{r}", REPEATS): 1 for obj in range(OBJECTS) for r in range(REASONS)}
    )


async def test_series_written_eight_at_a_time_keep_their_order_and_the_checkpoint_behind(
    control_plane: ControlPlane, kube_api_client: client.ApiClient, namespace: str
) -> None:
    """events.k8s.io/v1 mode: each object's series created, PATCHed to 2, then written by a
    heartbeat tick to its final count; every committed checkpoint claims no more than the API
    holds at the moment it is committed."""
    metrics = Metrics(CollectorRegistry())
    sink = connect(kubeconfig=str(control_plane.kubeconfig), metrics=metrics)
    namer = LineNamer("concurrent-test", "h")
    recorder = ModernRecorder(
        series=SeriesCache(),
        sink=sink,
        correlator=Correlator(CorrelatorSettings(spam_burst=1000), namer),
        namer=namer,
        metrics=metrics,
        component="concurrent-test",
        host="h",
        clock=time.time,
    )
    events_api = client.EventsV1Api(kube_api_client)

    def stored() -> dict[str, int]:
        """Each stored Event's name and count (its series', 1 without one)."""
        return {
            str(item.metadata and item.metadata.name): item.series.count if item.series else 1
            for item in events_api.list_namespaced_event(namespace).items
        }

    commits: list[tuple[Checkpoint, dict[str, int]]] = []

    def commit(checkpoint: Checkpoint) -> None:
        # Taken at the moment of the commit: the API must already hold what it claims.
        commits.append((checkpoint, stored()))

    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    for repeat in range(REPEATS):
        for spec in round_of_specs(namespace, repeat, f"message {repeat}"):
            events.put_nowait(Posting(spec, time.monotonic()))
        events.put_nowait(Mark(Checkpoint()))
    events.put_nowait(Tick("pending"))
    events.put_nowait(Mark(Checkpoint()))
    poster = Poster(events, recorder, namer, metrics, commit, writes=8)
    await drain(poster, sink)
    series = OBJECTS * REASONS
    # Per series: the create, the count-2 PATCH, the final PATCH of the tick.
    assert poster.outcomes == {
        "create": series,
        "patch": series * 2,
        "series": series * (REPEATS - 2),
    }
    counts = Counter(
        (item.regarding and item.regarding.name, item.reason, item.series and item.series.count)
        for item in events_api.list_namespaced_event(namespace).items
    )
    assert counts == Counter(
        {(f"web-{obj}", f"Reason{r}", REPEATS): 1 for obj in range(OBJECTS) for r in range(REASONS)}
    )
    assert len(commits) == REPEATS + 1
    for checkpoint, at_commit in commits:
        assert len(checkpoint.series) == series
        for record in checkpoint.series:
            assert at_commit[record.event.name] >= record.stored
    # The last commit follows the tick: every count written, nothing left pending.
    last, _ = commits[-1]
    assert all(r.stored == r.event.series_count == REPEATS for r in last.series)


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
    sink, namer, recorder = core_recorder(control_plane, metrics, "lookahead-test")
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
    await drain(poster, sink)
    lookups = "event_sidecar_object_lookups_total"
    # One GET per object: the second round's Postings share the first's look-up, or find its
    # answer cached (a hit, when it came back while they were being taken ahead).
    asked = {
        result: registry.get_sample_value(lookups, {"result": result}) or 0.0
        for result in LOOKUP_RESULTS
        if result != "hit"
    }
    assert asked == {**dict.fromkeys(asked, 0.0), "found": len(names)}
    items = json.loads(
        control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    )["items"]
    assert len(items) == 2 * len(names)
    assert {(i["involvedObject"]["name"], i["involvedObject"]["uid"]) for i in items} == set(
        uids.items()
    )
