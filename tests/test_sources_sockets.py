"""The socket source on its own: TCP and Unix, limits, idle timeout and backpressure."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.addresses import AddressError
from sidecar.core.lines.multiline import spans
from sidecar.core.settings import SocketSettings
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block
from sidecar.sources.sockets import SocketSource, parse_address

WAIT = 10.0


class Server:
    def __init__(self, source: SocketSource, blocks: asyncio.Queue[Block]) -> None:
        self.source = source
        self.blocks = blocks
        self.lines: list[bytes] = []
        self.too_long = 0
        #: The source's running task.
        self.task: asyncio.Task[None] | None = None

    async def drain(self, expected: int) -> list[bytes]:
        deadline = time.monotonic() + WAIT
        while len(self.lines) < expected:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                pytest.fail(f"got {len(self.lines)} lines, expected {expected}")
            block = await asyncio.wait_for(self.blocks.get(), timeout)
            self.lines.extend(block.data.splitlines())
            self.too_long += block.too_long
        return self.lines

    @property
    def tcp(self) -> tuple[str, int]:
        host, port = self.source.addresses[0].rsplit(":", 1)
        return host, int(port)

    def count(self, registry: CollectorRegistry, result: str) -> float:
        value = registry.get_sample_value(
            "event_sidecar_connections_total", {"source": "socket", "result": result}
        )
        return value or 0.0


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def serve(
    registry: CollectorRegistry,
) -> AsyncIterator[Callable[..., asyncio.Future[Server]]]:
    metrics = Metrics(registry)
    tasks: list[asyncio.Task[None]] = []

    async def start(queue_size: int = 8, **options: object) -> Server:
        settings = SocketSettings(**{"tcp": ("127.0.0.1:0",), **options})  # type: ignore[arg-type]
        blocks: asyncio.Queue[Block] = asyncio.Queue(queue_size)
        source = SocketSource(settings, blocks, metrics)
        await source.start()
        server = Server(source, blocks)
        server.task = asyncio.create_task(source.run())
        tasks.append(server.task)
        return server

    yield start  # type: ignore[misc]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_tcp_lines_arrive_and_the_last_line_needs_no_newline(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve()
    _reader, writer = await asyncio.open_connection(*server.tcp)
    writer.write(b"one\ntw")
    await writer.drain()
    writer.write(b"o\nthree")
    writer.close()
    assert await server.drain(3) == [b"one", b"two", b"three"]


async def test_a_java_stack_sent_in_pieces_is_one_block_with_its_line(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """The writer's record reaches the socket in pieces cut mid-line: the framer holds the
    logged line and the stack back until the stack has ended, so they stay one record."""
    server = await serve()
    record = (
        b"2024-01-11 14:21:03 ERROR Op:2 - failed\n"
        b"java.lang.IllegalStateException: boom\n"
        b"\tat com.example.Op.run(Op.java:2)\n"
        b"Caused by: java.io.IOException: refused\n"
        b"\t... 1 more\n"
    )
    _reader, writer = await asyncio.open_connection(*server.tcp)
    pieces = [record[:45], record[45:90], record[90:150], record[150:] + b"2024-01-11 14:21:04 I"]
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)
    writer.write(b"NFO  Op:3 - next\n")
    await writer.drain()
    block = await asyncio.wait_for(server.blocks.get(), WAIT)
    assert [block.data[start:end] for start, end in spans(block.data, 10_000)] == [
        record.rstrip(b"\n")
    ]
    writer.close()


async def test_unix_socket(serve: Callable[..., asyncio.Future[Server]], tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    server = await serve(tcp=(), unix=(str(path),))
    _reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b"hello\n")
    await writer.drain()
    assert await server.drain(1) == [b"hello"]
    writer.close()


def test_only_loopback_unless_allowed() -> None:
    assert parse_address("127.0.0.1:5170", allow_remote=False) == ("127.0.0.1", 5170)
    assert parse_address("[::1]:5170", allow_remote=False) == ("::1", 5170)
    with pytest.raises(AddressError, match="not a loopback address"):
        parse_address("0.0.0.0:5170", allow_remote=False)
    with pytest.raises(AddressError, match="not host:port"):
        parse_address("5170", allow_remote=False)
    assert parse_address("0.0.0.0:5170", allow_remote=True) == ("0.0.0.0", 5170)


async def test_extra_connections_are_refused_and_counted(
    serve: Callable[..., asyncio.Future[Server]], registry: CollectorRegistry
) -> None:
    server = await serve(max_connections=1)
    _first_reader, first = await asyncio.open_connection(*server.tcp)
    first.write(b"a\n")
    await first.drain()
    await server.drain(1)
    second_reader, second = await asyncio.open_connection(*server.tcp)
    assert await asyncio.wait_for(second_reader.read(), WAIT) == b""  # closed at once
    assert server.count(registry, "refused") == 1
    first.write(b"b\n")
    await first.drain()
    assert await server.drain(2) == [b"a", b"b"]
    first.close()
    second.close()


async def test_an_idle_connection_is_closed(
    serve: Callable[..., asyncio.Future[Server]], registry: CollectorRegistry
) -> None:
    server = await serve(idle_timeout=0.2)
    reader, writer = await asyncio.open_connection(*server.tcp)
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    assert server.count(registry, "idle_timeout") == 1
    writer.close()


async def test_a_long_line_is_skipped_and_the_connection_goes_on(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve(max_line_bytes=1000, read_size=512)
    _reader, writer = await asyncio.open_connection(*server.tcp)
    writer.write(b"before\n" + b"x" * 50_000 + b"\nafter\n")
    await writer.drain()
    assert await server.drain(2) == [b"before", b"after"]
    assert server.too_long == 1
    writer.close()


async def test_a_full_pipeline_stops_reading_the_socket(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """Nobody takes blocks: the writer is slowed by TCP flow control, not buffered without end."""
    server = await serve(queue_size=1)
    line = b"x" * 99 + b"\n"
    total = 64 * 1024 * 1024

    def write_until_blocked() -> int:
        sent = 0
        with socket.create_connection(server.tcp) as client:
            client.settimeout(1.0)
            chunk = line * 10_000
            try:
                while sent < total:
                    sent += client.send(chunk)
            except TimeoutError:
                pass
            return sent

    sent = await asyncio.to_thread(write_until_blocked)
    # Stopped by what the kernel's socket buffers and one block hold, far from all of it...
    assert sent < total / 4
    # ...and nothing was lost: once blocks are taken again, every line sent arrives.
    expected = sent // len(line) + (1 if sent % len(line) else 0)
    lines = await server.drain(expected)
    assert len(lines) == expected
    assert lines[0] == line[:-1]


LOGGED = b"2024-01-11 14:21:03 ERROR Op:2 - failed\n"
STACK = b"java.lang.IllegalStateException: boom\n\tat com.example.Op.run(Op.java:2)\n"
NEXT = b"2024-01-11 14:21:04 INFO  Op:3 - next\n"


async def test_a_line_and_its_stack_sent_apart_at_the_newline_are_one_record(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """Two writes cut exactly at the newline, read apart: the line waits for what follows (up to
    the linger), and its stack joins it."""
    server = await serve(linger=30.0)
    _reader, writer = await asyncio.open_connection(*server.tcp)
    writer.write(LOGGED)
    await writer.drain()
    await asyncio.sleep(0.2)  # read alone, and kept back
    assert server.blocks.empty()
    writer.write(STACK + NEXT)
    await writer.drain()
    block = await asyncio.wait_for(server.blocks.get(), WAIT)
    assert block.data == LOGGED + STACK
    assert spans(block.data, 10_000) == [(0, len(block.data) - 1)]
    writer.close()
    # The writer closed: what is kept back goes at once.
    block = await asyncio.wait_for(server.blocks.get(), WAIT)
    assert block.data == NEXT


async def test_a_line_without_a_stack_goes_after_the_linger(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    server = await serve(linger=0.3)
    _reader, writer = await asyncio.open_connection(*server.tcp)
    writer.write(LOGGED)
    await writer.drain()
    written = time.monotonic()
    block = await asyncio.wait_for(server.blocks.get(), WAIT)  # the connection stays open
    assert time.monotonic() - written >= 0.3
    assert block.data == LOGGED
    writer.close()


async def test_lines_kept_back_go_when_a_connection_times_out_in_mid_line(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """A partial line that may begin a stack keeps the line before it back; the connection is
    closed for its stalled line, and the complete line still goes."""
    server = await serve(linger=0.05, line_timeout=0.5)
    _reader, writer = await asyncio.open_connection(*server.tcp)
    writer.write(LOGGED + b"java.lang.Ill")
    await writer.drain()
    block = await asyncio.wait_for(server.blocks.get(), WAIT)
    assert block.data == LOGGED
    writer.close()


async def test_a_line_kept_back_goes_when_the_source_stops(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    """Shutdown cancels the connections: the line kept back for a stack is handed over (the
    queue is drained next), not lost with the connection."""
    server = await serve(linger=30.0)
    _reader, writer = await asyncio.open_connection(*server.tcp)
    writer.write(LOGGED)
    await writer.drain()
    await asyncio.sleep(0.2)
    assert server.blocks.empty()
    assert server.task is not None
    server.task.cancel()
    await asyncio.gather(server.task, return_exceptions=True)
    assert server.blocks.get_nowait().data == LOGGED
    writer.close()
