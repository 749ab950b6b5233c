"""`sidecar.daemon.sourcehealth`: when a source counts as unreadable, and what is said once it
does."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.settings import FileSettings
from sidecar.daemon.sourcehealth import (
    FILE_REASONS,
    OPEN_AFTER,
    Condition,
    Failure,
    SourceWatch,
    WatchedLogAPI,
    file_failure,
    pod_log_failure,
)
from sidecar.model import ContainerInstance, PodLogError
from sidecar.recording.queue import Posting, QueueItem
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block
from sidecar.sources.files import FileSource

FORBIDDEN = Failure("forbidden", '403: pods "p" is forbidden')


def test_a_condition_is_reported_once_it_lasted_and_once_only() -> None:
    condition = Condition(after=60.0)
    assert condition.observe(FORBIDDEN, 0.0) is None
    assert condition.observe(FORBIDDEN, 59.0) is None
    began = condition.observe(FORBIDDEN, 60.0)
    assert began is not None and began.failure == FORBIDDEN and began.lasted == 60.0
    # Retries keep failing: nothing more to say.
    assert [condition.observe(FORBIDDEN, t) for t in (61.0, 120.0, 600.0)] == [None] * 3
    ended = condition.observe(None, 601.0)
    assert ended is not None and ended.failure is None
    assert condition.observe(None, 602.0) is None


def test_a_break_starts_the_count_again() -> None:
    condition = Condition(after=60.0)
    condition.observe(FORBIDDEN, 0.0)
    assert condition.observe(None, 50.0) is None  # read once: not reported, count reset
    assert condition.observe(FORBIDDEN, 55.0) is None
    assert condition.observe(FORBIDDEN, 110.0) is None
    assert condition.observe(FORBIDDEN, 115.0) is not None


@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, "forbidden"), (403, "forbidden"), (404, "not_found"), (400, "refused"), (0, None)],
)
def test_pod_log_errors_map_to_bounded_reasons(status: int, reason: str | None) -> None:
    failure = pod_log_failure(PodLogError(status, "x" * 1000))
    assert (failure.reason if failure else None) == reason
    assert failure is None or len(failure.detail) <= 300


def test_the_detail_is_the_apis_message() -> None:
    answer = (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
        '"pods \\"p\\" is forbidden: User \\"u\\" cannot get resource \\"pods/log\\"",'
        '"reason":"Forbidden","code":403}'
    )
    failure = pod_log_failure(PodLogError(403, answer))
    assert failure == Failure(
        "forbidden", '403: pods "p" is forbidden: User "u" cannot get resource "pods/log"'
    )


class FakeLogAPI:
    """Answers with `error` (or `chunks`), as the pod log client would."""

    def __init__(self) -> None:
        self.error: PodLogError | None = None
        self.chunks: list[bytes] = []
        self.hang = False

    async def instance(self, namespace: str, pod: str, container: str) -> ContainerInstance | None:
        return ContainerInstance("containerd://1", 0)

    async def stream(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        since: str | None,
        previous: bool = False,
        follow: bool = True,
    ) -> AsyncIterator[bytes]:
        if self.error is not None:
            raise self.error
        if self.hang:
            await asyncio.sleep(3600)
        for chunk in self.chunks:
            yield chunk


async def read(api: WatchedLogAPI, *, previous: bool = False) -> None:
    with pytest.raises(PodLogError):
        async for _ in api.stream("ns", "p", "c", since=None, previous=previous):
            pass


async def test_the_watched_api_notes_refusals_until_something_else_is_seen() -> None:
    fake, now = FakeLogAPI(), [0.0]
    api = WatchedLogAPI(fake, clock=lambda: now[0])
    fake.error = PodLogError(403, "forbidden")
    await read(api)
    failure = api.failure()
    assert failure is not None and failure.reason == "forbidden"
    # A previous instance's log that is gone says nothing about the current one.
    fake.error = PodLogError(404, "previous terminated container not found")
    await read(api, previous=True)
    assert api.failure() == failure
    # The API did not answer: no refusal.
    fake.error = PodLogError(0, "connection refused")
    await read(api)
    assert api.failure() is None
    fake.error = PodLogError(403, "forbidden")
    await read(api)
    fake.error, fake.chunks = None, [b"line\n"]
    assert [chunk async for chunk in api.stream("ns", "p", "c", since=None)] == [b"line\n"]
    assert api.failure() is None


async def test_a_quiet_open_stream_clears_a_refusal() -> None:
    fake, now = FakeLogAPI(), [0.0]
    api = WatchedLogAPI(fake, clock=lambda: now[0])
    fake.error = PodLogError(403, "forbidden")
    await read(api)
    fake.error, fake.hang = None, True  # RBAC fixed; the container logs nothing

    async def first_chunk() -> bytes:
        return await anext(aiter(api.stream("ns", "p", "c", since=None)))

    reading = asyncio.create_task(first_chunk())
    await asyncio.sleep(0.01)
    assert api.failure() is not None  # a refusal would come back at once
    now[0] = OPEN_AFTER
    assert api.failure() is None
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading


def test_files_missing_unreadable_or_followed(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.log")
    source = FileSource(
        FileSettings(paths=(pattern,)), asyncio.Queue[Block](), Metrics(CollectorRegistry())
    )
    missing = file_failure((pattern,), source)
    assert missing == Failure("missing", f"no file matches {pattern}")
    log = tmp_path / "app.log"
    log.write_text("")
    log.chmod(0)
    unreadable = file_failure((pattern,), source)
    assert unreadable is not None and unreadable.reason == "unreadable"
    if os.geteuid() == 0:  # root opens it anyway: not followed yet is all there is to say
        assert unreadable.detail == f"{log} is not read yet"
    else:
        assert unreadable.detail == f"cannot open {log}: Permission denied"


async def test_the_watch_reports_on_the_pod_and_in_the_metric() -> None:
    registry = CollectorRegistry()
    events: asyncio.Queue[QueueItem] = asyncio.Queue()
    now, failing = [0.0], list[Failure | None]([FORBIDDEN])
    watch = SourceWatch(
        Metrics(registry), events, after=10.0, pod="ctl-0", namespace="team", clock=lambda: now[0]
    )
    watch.watch("file", lambda: failing[0], FILE_REASONS)

    def gauge(reason: str) -> float | None:
        labels = {"source": "file", "reason": reason}
        return registry.get_sample_value("event_sidecar_source_unreadable", labels)

    assert gauge("missing") == 0.0 and gauge("unreadable") == 0.0
    for t in (0.0, 5.0, 10.0, 15.0, 20.0):
        now[0] = t
        await watch.check()
    assert gauge("forbidden") == 1.0 and not watch.readable
    [warning] = [events.get_nowait() for _ in range(events.qsize())]
    assert isinstance(warning, Posting)
    spec = warning.spec
    assert (spec.type, spec.reason) == ("Warning", "SourceUnreadable")
    assert (spec.target.kind, spec.target.namespace, spec.target.name) == ("Pod", "team", "ctl-0")
    assert "403" in spec.message and "file" in spec.message
    failing[0] = None
    await watch.check()
    assert gauge("forbidden") == 0.0 and watch.readable
    [recovered] = [events.get_nowait() for _ in range(events.qsize())]
    assert isinstance(recovered, Posting)
    assert (recovered.spec.type, recovered.spec.reason) == ("Normal", "SourceReadable")
