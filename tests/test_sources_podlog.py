"""The pod log source against a fake pod log API: a real aiohttp server on 127.0.0.1 read through
the real `PodLogClient`.

The fake serves what the apiserver proxies from a kubelet, as far as the source can tell: the
pod's container status; the log with `timestamps`, `sinceTime` (whole seconds; every line stamped
at or after it, in the log's order), `previous` (400 when there is no previous instance) and
`follow`. A followed stream sends what is appended as it is appended, one chunk per append, so a
test decides where chunks end. Like the kubelet's reader it follows the log by its byte offset: a
log truncated under it stalls the stream, silently, until the log grows past that offset, and then
the first bytes it sends are the rest of a line it cannot parse (which it drops).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from sidecar.core.lines.multiline import spans
from sidecar.core.lines.scan import DEFAULT_LINGER
from sidecar.core.settings import PodLogSettings
from sidecar.kube import connect_pod_logs
from sidecar.model import PodLogPosition
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block
from sidecar.sources.podlog import PodLogSource
from tests.conftest import plain_kubeconfig

WAIT = 10.0
NAMESPACE, POD, CONTAINER = "team-a", "legacy-0", "manager"
BASE = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC)
PANIC = (
    b"panic: runtime error: invalid memory address or nil pointer dereference\n"
    b"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]\n"
    b"\n"
    b"goroutine 1 [running]:\n"
    b"main.reconcile(0x0)\n"
    b"\t/src/controller.go:42 +0x1d\n"
)


def stamp(micros: int) -> bytes:
    """The kubelet's RFC 3339 timestamp `micros` microseconds after `BASE`."""
    moment = BASE + timedelta(microseconds=micros)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond * 1000:09d}Z".encode()


def stamped(micros: int, *lines: bytes) -> bytes:
    """Each of `lines` (with its newline) behind the timestamp, as `timestamps=true` sends it."""
    return b"".join(stamp(micros) + b" " + line for line in lines)


def _stamp_of(line: bytes) -> datetime:
    text = line.split(b" ", 1)[0].decode()
    seconds, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(seconds).replace(tzinfo=UTC)
    return moment + timedelta(microseconds=int(fraction.ljust(9, "0")[:6] or 0))


def _since(log: bytes, since: str | None) -> bytes:
    """The lines of `log` stamped at or after `since`, in order (the kubelet's `sinceTime`)."""
    if not since:
        return log
    start = datetime.fromisoformat(since.replace("Z", "+00:00"))
    lines = log.split(b"\n")
    kept = [line + b"\n" for line in lines[:-1] if _stamp_of(line) >= start]
    if lines[-1] and _stamp_of(lines[-1]) >= start:
        kept.append(lines[-1])
    return b"".join(kept)


@dataclass
class FakeLogAPI:
    """One pod with one container, its current instance's log and its previous one's."""

    container_id: str = "containerd://one"
    restart_count: int = 0
    log: bytearray = field(default_factory=bytearray)
    #: The previous instance's log; None: there is none (the kubelet answers 400).
    previous: bytes | None = None
    #: The query of every log request, in order.
    requests: list[dict[str, str]] = field(default_factory=list)
    truncations: int = 0
    drops: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, data: bytes) -> None:
        """The controller writes: followed streams send `data` as one chunk."""
        self.log += data
        self._notify()

    def truncate(self) -> None:
        self.log.clear()
        self.truncations += 1
        self._notify()

    def drop_streams(self) -> None:
        """End every followed stream (an apiserver restart, a broken connection)."""
        self.drops += 1
        self._notify()

    def restart_container(self, container_id: str, *, keep_previous: bool = True) -> None:
        self.previous = bytes(self.log) if keep_previous else None
        self.log = bytearray()
        self.container_id = container_id
        self.restart_count += 1
        self.drop_streams()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def pod(self, _request: web.Request) -> web.Response:
        status = {
            "name": CONTAINER,
            "containerID": self.container_id,
            "restartCount": self.restart_count,
            "state": {"running": {"startedAt": "2026-12-06T01:00:00Z"}},
        }
        return web.json_response({"status": {"containerStatuses": [status]}})

    async def logs(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append(query)
        since = query.get("sinceTime")
        if query.get("previous") == "true":
            if self.previous is None:
                return web.Response(status=400, text="previous terminated container not found")
            return web.Response(body=_since(self.previous, since))
        if query.get("follow") != "true":
            return web.Response(body=_since(bytes(self.log), since))
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(_since(bytes(self.log), since))
        offset, truncations, drops = len(self.log), self.truncations, self.drops
        while True:
            await self._changed.wait()
            if self.drops != drops:
                break
            if len(self.log) <= offset:
                continue  # truncated: the reader waits at its offset, as the kubelet's does
            data = bytes(self.log[offset:])
            if self.truncations != truncations:
                data = data[data.find(b"\n") + 1 :]  # the middle of a line: not parsed, dropped
                truncations = self.truncations
            offset = len(self.log)
            await response.write(data)
        return response


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[FakeLogAPI, Path]]:
    api = FakeLogAPI()
    app = web.Application()
    base = f"/api/v1/namespaces/{NAMESPACE}/pods/{POD}"
    app.router.add_get(base, api.pod)
    app.router.add_get(base + "/log", api.logs)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kubeconfig = plain_kubeconfig(tmp_path / "fake.kubeconfig", f"http://127.0.0.1:{port}")
    try:
        yield api, kubeconfig
    finally:
        api.drop_streams()
        await runner.cleanup()


class Follower:
    """What a running `PodLogSource` handed over, and its metrics (also used by
    tests/faults/test_pod_log_kwok.py, with the waits a real kwok needs)."""

    def __init__(
        self, registry: CollectorRegistry, *, wait: float = WAIT, settle: float = 0.3
    ) -> None:
        self.registry = registry
        self.blocks: list[Block] = []
        #: How long to wait for what is expected, then for nothing more to arrive.
        self.wait, self.settle = wait, settle

    @property
    def data(self) -> bytes:
        return b"".join(block.data for block in self.blocks)

    @property
    def position(self) -> PodLogPosition | None:
        positions = [block.pod_log for block in self.blocks if block.pod_log is not None]
        return positions[-1] if positions else None

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(f"event_sidecar_{name}", labels) or 0.0

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.wait
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; handed over: {self.data!r}")
            await asyncio.sleep(0.02)

    async def data_is(self, expected: bytes) -> None:
        await self.until(lambda: len(self.data) >= len(expected), f"{expected!r}")
        await asyncio.sleep(self.settle)  # and nothing more arrives
        assert self.data == expected


@asynccontextmanager
async def following(
    kubeconfig: Path,
    resume: PodLogPosition | None = None,
    stall_check: float = 30.0,
    settle_time: float | None = None,
    linger: float = DEFAULT_LINGER,
) -> AsyncIterator[Follower]:
    client = connect_pod_logs(kubeconfig=str(kubeconfig))
    registry = CollectorRegistry()
    blocks: asyncio.Queue[Block] = asyncio.Queue(4)
    settings = PodLogSettings(
        container=CONTAINER,
        pod=POD,
        namespace=NAMESPACE,
        backoff_initial=0.05,
        backoff_max=0.2,
        stall_check=stall_check,
        linger=linger,
    )
    if settle_time is not None:
        settings = dataclasses.replace(settings, settle_time=settle_time)
    source = PodLogSource(settings, client, blocks, Metrics(registry), resume=resume)
    follower = Follower(registry)

    async def collect() -> None:
        while True:
            follower.blocks.append(await blocks.get())

    tasks = [asyncio.create_task(source.run()), asyncio.create_task(collect())]
    try:
        yield follower
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()


async def test_lines_arrive_whole_whatever_the_chunks(fake: tuple[FakeLogAPI, Path]) -> None:
    api, kubeconfig = fake
    api.append(stamped(1, b"first\n"))
    async with following(kubeconfig) as follower:
        await follower.data_is(b"first\n")
        line = stamped(2, b"a line cut by a chunk boundary\n")
        api.append(line[:20])
        await asyncio.sleep(0.1)
        api.append(line[20:] + stamped(3, b"third\n"))
        await follower.data_is(b"first\na line cut by a chunk boundary\nthird\n")
        assert follower.value("pod_log_lines_skipped_total") == 0


async def test_a_panic_split_across_two_chunks_is_one_record(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    api, kubeconfig = fake
    api.append(stamped(1, b"before\n"))
    async with following(kubeconfig) as follower:
        await follower.data_is(b"before\n")
        lines = PANIC.splitlines(keepends=True)
        api.append(stamped(2, *lines[:3]))
        await asyncio.sleep(0.3)  # the head waits for the rest, whatever its chunk
        api.append(stamped(3, *lines[3:]) + stamped(4, b"after\n"))
        await follower.data_is(b"before\n" + PANIC + b"after\n")
        whole = [block for block in follower.blocks if PANIC in block.data]
        assert len(whole) == 1, [block.data for block in follower.blocks]
        assert [whole[0].data[start:end] for start, end in spans(whole[0].data, 10_000)] == [
            PANIC.rstrip(b"\n")
        ]
        # The position never lands inside the panic: its block's is after its last line.
        assert whole[0].pod_log is not None
        assert whole[0].pod_log.stamp >= _nanos(3)


async def test_a_traceback_split_across_two_chunks_is_one_record_with_its_line(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    api, kubeconfig = fake
    head = b"[2024-01-11 14:21:03,806] kopf.objects         [ERROR   ] [ns/x] Handler failed.\n"
    traceback = (
        b"Traceback (most recent call last):\n"
        b'  File "/app/handlers.py", line 12, in create_fn\n'
        b'    raise ValueError("bad")\n'
        b"ValueError: bad\n"
    )
    record = head + traceback
    api.append(stamped(1, b"before\n"))
    async with following(kubeconfig) as follower:
        await follower.data_is(b"before\n")
        lines = record.splitlines(keepends=True)
        api.append(stamped(2, *lines[:3]))
        await asyncio.sleep(0.3)  # the line and its traceback wait for the exception line
        api.append(stamped(3, *lines[3:]) + stamped(4, b"after\n"))
        await follower.data_is(b"before\n" + record + b"after\n")
        whole = [block for block in follower.blocks if record in block.data]
        assert len(whole) == 1, [block.data for block in follower.blocks]
        assert [whole[0].data[start:end] for start, end in spans(whole[0].data, 10_000)] == [
            record.rstrip(b"\n")
        ]


LOGGED = b"[2024-01-11 14:21:03,806] kopf.objects         [ERROR   ] [ns/x] Handler failed.\n"
TRACEBACK = (
    b"Traceback (most recent call last):\n"
    b'  File "/app/handlers.py", line 12, in create_fn\n'
    b'    raise ValueError("bad")\n'
    b"ValueError: bad\n"
)


async def test_a_line_and_its_traceback_in_chunks_cut_at_the_newline_are_one_record(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    """The kubelet streams line by line: a chunk may end exactly between a line and its stack.
    The line waits for the next chunk (up to the linger), its position not yet recorded."""
    api, kubeconfig = fake
    api.append(stamped(1, b"before\n"))
    async with following(kubeconfig, linger=30.0) as follower:
        await asyncio.sleep(0.3)  # "before" ended its chunk: kept back until the next one
        api.append(stamped(2, LOGGED))
        await follower.data_is(b"before\n")  # and now the line is
        assert follower.position is not None
        assert follower.position.stamp == _nanos(1)  # a restart now reads the line again
        api.append(stamped(3, *TRACEBACK.splitlines(keepends=True)) + stamped(4, b"after\n"))
        await follower.until(lambda: LOGGED in follower.data, "the record")
        block = next(block for block in follower.blocks if LOGGED in block.data)
        assert block.data == LOGGED + TRACEBACK
        assert spans(block.data, 10_000) == [(0, len(block.data) - 1)]
        assert block.pod_log is not None
        assert block.pod_log.stamp == _nanos(3)


async def test_a_line_without_a_stack_goes_after_the_linger_and_a_restart_rereads_one_held(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    api, kubeconfig = fake
    api.append(stamped(1, b"before\n"))
    async with following(kubeconfig, linger=30.0) as follower:
        await asyncio.sleep(0.3)
        api.append(stamped(2, LOGGED))
        await follower.data_is(b"before\n")
        position = follower.position
    # Stopped while the line was kept back: it was never recorded, so it is read again.
    async with following(kubeconfig, resume=position, linger=0.3) as follower:
        started = time.monotonic()
        await follower.data_is(LOGGED)
        assert time.monotonic() - started >= 0.3
        assert follower.position is not None
        assert follower.position.stamp == _nanos(2)


def _nanos(micros: int) -> int:
    return (int(BASE.timestamp()) * 1_000_000 + micros) * 1000


async def test_a_live_line_stamped_before_the_last_one_is_kept(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    # stdout and stderr are stamped separately: interleaved, their stamps can go backwards.
    api, kubeconfig = fake
    api.append(stamped(10, b"stdout 1\n") + stamped(8, b"stderr 1\n"))
    async with following(kubeconfig) as follower:
        await follower.data_is(b"stdout 1\nstderr 1\n")
        api.append(stamped(20, b"stdout 2\n"))
        api.append(stamped(19, b"stderr 2\n") + stamped(19, b"stderr 2\n"))
        await follower.data_is(b"stdout 1\nstderr 1\nstdout 2\nstderr 2\nstderr 2\n")
        assert follower.value("pod_log_lines_skipped_total") == 0


async def test_a_resume_skips_exactly_what_was_read_even_stamped_out_of_order(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    api, kubeconfig = fake
    api.append(stamped(10, b"a\n") + stamped(9, b"b\n") + stamped(9, b"b\n"))
    async with following(kubeconfig) as first:
        await first.data_is(b"a\nb\nb\n")
        position = first.position
    assert position is not None
    # Written while the sidecar was down: one stamped before everything read, one the same
    # line at the same nanosecond as a line read (a line's identity is its stamp and bytes).
    api.append(stamped(8, b"c\n") + stamped(9, b"b\n") + stamped(11, b"d\n"))
    async with following(kubeconfig, resume=position) as second:
        await second.data_is(b"c\nb\nd\n")
        assert second.value("pod_log_lines_skipped_total") == 3
        assert second.value("pod_log_gaps_total", reason="rotated") == 0
    # The resumed stream started a second before the last line read, a whole second.
    assert api.requests[-1]["sinceTime"] == "2026-12-06T00:59:59Z"


async def test_a_reconnect_reads_on_exactly_where_it_was(fake: tuple[FakeLogAPI, Path]) -> None:
    api, kubeconfig = fake
    api.append(stamped(1, b"one\n"))
    async with following(kubeconfig) as follower:
        await follower.data_is(b"one\n")
        api.drop_streams()
        api.append(stamped(2, b"two\n"))
        await follower.data_is(b"one\ntwo\n")
        assert follower.value("pod_log_reconnects_total") >= 1
        assert follower.value("pod_log_lines_skipped_total") == 1
        assert follower.value("pod_log_gaps_total", reason="rotated") == 0


async def test_a_resumed_stream_that_does_not_reach_back_is_one_rotated_gap(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    api, kubeconfig = fake
    api.append(stamped(1, b"one\n"))
    async with following(kubeconfig) as follower:
        await follower.data_is(b"one\n")
        # The kubelet rotated the log away (and kept the stream going); then the stream broke.
        api.log = bytearray(stamped(3, b"three\n"))
        api.drop_streams()
        await follower.data_is(b"one\nthree\n")
        assert follower.value("pod_log_gaps_total", reason="rotated") == 1


async def test_a_truncated_log_under_a_stalled_stream_is_counted_and_read_again(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    api, kubeconfig = fake
    api.append(stamped(1, b"a long first line, longer than what comes after\n"))
    async with following(kubeconfig, stall_check=0.3) as follower:
        await follower.data_is(b"a long first line, longer than what comes after\n")
        api.truncate()
        api.append(stamped(2, b"short\n"))
        api.append(stamped(3, b"lines\n"))
        await follower.data_is(b"a long first line, longer than what comes after\nshort\nlines\n")
        assert follower.value("pod_log_truncations_total") == 1
        assert follower.value("pod_log_gaps_total", reason="rotated") == 0
        api.append(stamped(4, b"and on\n"))
        await follower.data_is(
            b"a long first line, longer than what comes after\nshort\nlines\nand on\n"
        )


async def test_a_quiet_stream_is_not_taken_for_a_stalled_one(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    api, kubeconfig = fake
    api.append(stamped(1, b"one\n") + stamped(2, b"partial, no newline yet"))
    async with following(kubeconfig, stall_check=0.1) as follower:
        await follower.data_is(b"one\n")
        await asyncio.sleep(0.5)
        assert follower.value("pod_log_truncations_total") == 0
        assert follower.value("pod_log_reconnects_total") == 0
        api.append(b"\n")
        await follower.data_is(b"one\npartial, no newline yet\n")


async def test_a_restart_reads_the_previous_tail_then_the_new_instance(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    api, kubeconfig = fake
    api.append(stamped(1, b"one\n"))
    async with following(kubeconfig) as first:
        await first.data_is(b"one\n")
        position = first.position
    assert position is not None
    # Written while the sidecar was down; the last line never got its newline.
    api.append(stamped(2, *PANIC.splitlines(keepends=True)) + stamped(3, b"last words"))
    api.restart_container("containerd://two")
    api.append(stamped(4, b"new instance\n"))
    async with following(kubeconfig, resume=position) as second:
        await second.data_is(PANIC + b"last words\nnew instance\n")
        assert any(PANIC in block.data for block in second.blocks)
        for reason in ("instance_missed", "previous_unavailable", "rotated"):
            assert second.value("pod_log_gaps_total", reason=reason) == 0, reason
    assert [request.get("previous") for request in api.requests[-2:]] == ["true", None]


async def test_an_unreadable_previous_instance_is_one_gap(fake: tuple[FakeLogAPI, Path]) -> None:
    api, kubeconfig = fake
    api.append(stamped(1, b"one\n"))
    async with following(kubeconfig) as first:
        await first.data_is(b"one\n")
        position = first.position
    assert position is not None
    api.append(stamped(2, b"lost with the previous instance\n"))
    api.restart_container("containerd://two", keep_previous=False)
    api.append(stamped(3, b"new instance\n"))
    async with following(kubeconfig, resume=position) as second:
        await second.data_is(b"new instance\n")
        assert second.value("pod_log_gaps_total", reason="previous_unavailable") == 1
        assert second.value("pod_log_gaps_total", reason="rotated") == 0


async def test_instances_that_came_and_went_unread_are_counted(
    fake: tuple[FakeLogAPI, Path],
) -> None:
    api, kubeconfig = fake
    api.append(stamped(1, b"one\n"))
    async with following(kubeconfig) as first:
        await first.data_is(b"one\n")
        position = first.position
    assert position is not None
    api.restart_container("containerd://two")
    api.restart_container("containerd://three")
    api.append(stamped(3, b"third instance\n"))
    async with following(kubeconfig, resume=position) as second:
        await second.data_is(b"third instance\n")
        assert second.value("pod_log_gaps_total", reason="instance_missed") == 1
        assert second.value("pod_log_gaps_total", reason="previous_unavailable") == 0


@pytest.mark.parametrize(("settle", "most"), [(0.3, 5), (0.0, 40)])
async def test_chunks_within_the_settle_time_are_read_together(
    fake: tuple[FakeLogAPI, Path], settle: float, most: int
) -> None:
    """An unbuffered controller's one chunk per line: with a settle time, the chunks sent while
    the source waits are handed over together (one wake-up for many); without, one by one."""
    api, kubeconfig = fake
    api.append(stamped(1, b"first\n"))
    async with following(kubeconfig, settle_time=settle) as follower:
        await follower.data_is(b"first\n")
        began = time.monotonic()
        for number in range(40):
            api.append(stamped(2 + number, b"line %d\n" % number))
            await asyncio.sleep(0.02)
        expected = b"first\n" + b"".join(b"line %d\n" % number for number in range(40))
        await follower.data_is(expected)
        blocks = [block for block in follower.blocks if block.data]
        assert len(blocks) <= most + 1, len(blocks)
        if settle:
            # About one hand-over per settle time over the 0.8 s of writing, not one per chunk.
            assert len(blocks) >= 2
            assert time.monotonic() - began < 0.8 + 2 * settle + 1.0
        else:
            assert len(blocks) > 10
