"""Slowloris on the socket source: trickling writers lose their slots, the controller gets one.

The idle timeout used to restart on every byte, so 16 connections sending one byte a second held
every slot for ever and the controller's own connection was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import CollectorRegistry

from sidecar.core.settings import SocketSettings
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block
from sidecar.sources.sockets import SocketSource

WAIT = 10.0
#: Slowloris connections opened; as many as the slots.
ATTACKERS = 8


class Listening:
    def __init__(self, source: SocketSource, blocks: asyncio.Queue[Block]) -> None:
        self.source = source
        self.blocks = blocks

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.source.addresses[0].rsplit(":", 1)
        return host, int(port)

    def count(self, registry: CollectorRegistry, result: str) -> float:
        value = registry.get_sample_value(
            "event_sidecar_connections_total", {"source": "socket", "result": result}
        )
        return value or 0.0

    async def next_lines(self) -> list[bytes]:
        block = await asyncio.wait_for(self.blocks.get(), WAIT)
        return block.data.splitlines()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def listen(registry: CollectorRegistry) -> AsyncIterator[Callable[..., object]]:
    tasks: list[asyncio.Task[None]] = []

    async def start(**options: object) -> Listening:
        settings = SocketSettings(**{"tcp": ("127.0.0.1:0",), **options})  # type: ignore[arg-type]
        blocks: asyncio.Queue[Block] = asyncio.Queue(8)
        source = SocketSource(settings, blocks, Metrics(registry))
        await source.start()
        tasks.append(asyncio.create_task(source.run()))
        return Listening(source, blocks)

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def trickle(writer: asyncio.StreamWriter, stop: asyncio.Event, interval: float) -> None:
    """One byte at a time, never a newline, until stopped or disconnected."""
    try:
        while not stop.is_set():
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(interval)
    except ConnectionError:
        pass
    finally:
        writer.close()


async def test_a_line_that_never_completes_closes_its_connection(
    listen: Callable[..., object], registry: CollectorRegistry
) -> None:
    server: Listening = await listen(line_timeout=0.5, idle_timeout=600.0)  # type: ignore[misc]
    reader, writer = await asyncio.open_connection(*server.address)
    stop = asyncio.Event()
    sender = asyncio.create_task(trickle(writer, stop, 0.05))
    started = time.monotonic()
    # The server closes its end: our read sees EOF (or a reset) long before idle_timeout.
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
    assert time.monotonic() - started < WAIT
    stop.set()
    await sender
    assert server.count(registry, "line_timeout") == 1
    assert server.count(registry, "idle_timeout") == 0


async def test_a_quiet_controller_keeps_its_connection(
    listen: Callable[..., object], registry: CollectorRegistry
) -> None:
    server: Listening = await listen(line_timeout=0.2, idle_timeout=600.0)  # type: ignore[misc]
    _reader, writer = await asyncio.open_connection(*server.address)
    writer.write(b"one\n")
    await writer.drain()
    assert await server.next_lines() == [b"one"]
    await asyncio.sleep(0.6)  # silent, between lines, three times line_timeout
    writer.write(b"two\n")
    await writer.drain()
    assert await server.next_lines() == [b"two"]
    assert server.count(registry, "line_timeout") == 0
    writer.close()


async def test_trickling_writers_holding_every_slot_cannot_lock_out_the_controller(
    listen: Callable[..., object], registry: CollectorRegistry
) -> None:
    # line_timeout long: the slot keeper alone must make room, not the timeout.
    server: Listening = await listen(  # type: ignore[misc]
        max_connections=ATTACKERS, line_timeout=600.0, idle_timeout=600.0
    )
    stop = asyncio.Event()
    attackers = []
    for _ in range(ATTACKERS):
        _reader, writer = await asyncio.open_connection(*server.address)
        attackers.append(asyncio.create_task(trickle(writer, stop, 0.05)))
    deadline = time.monotonic() + WAIT
    while server.count(registry, "accepted") < ATTACKERS:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # every attacker has started its endless line

    _reader, controller = await asyncio.open_connection(*server.address)
    controller.write(b"level=info msg=hello\n")
    await controller.drain()
    assert await server.next_lines() == [b"level=info msg=hello"]
    assert server.count(registry, "evicted") == 1
    assert server.count(registry, "refused") == 0
    # A writer that closes ends its last line; the evicted one's partial line is no line.
    stop.set()
    await asyncio.gather(*attackers)
    controller.close()
    deadline = time.monotonic() + WAIT
    while server.blocks.qsize() < ATTACKERS - 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert server.blocks.qsize() == ATTACKERS - 1


#: Connections of the flood at once: far more than the slots, fewer than the listen backlog
#: (asyncio's 100), past which the kernel, not the source, decides which connections arrive.
FLOOD = 90


async def test_a_connection_flood_is_counted_line_for_line_and_the_source_keeps_serving(
    listen: Callable[..., object], registry: CollectorRegistry
) -> None:
    """Hundreds of connections at once, each writing one line and leaving: every connection is
    accepted or refused and counted, every accepted line is delivered once, and a controller
    connecting afterwards is served."""
    server: Listening = await listen(max_connections=16)  # type: ignore[misc]
    lines: list[bytes] = []

    async def drain() -> None:
        while True:
            lines.extend((await server.blocks.get()).data.splitlines())

    draining = asyncio.create_task(drain())

    unconnected = 0

    async def flood(number: int) -> None:
        nonlocal unconnected
        try:
            _reader, writer = await asyncio.open_connection(*server.address)
        except OSError:  # the kernel's accept backlog overflowed: never reached the source
            unconnected += 1
            return
        writer.write(b"level=info msg=flood n=%d\n" % number)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    try:
        await asyncio.gather(*(flood(number) for number in range(FLOOD)))
        deadline = time.monotonic() + WAIT
        reached = FLOOD - unconnected
        while server.count(registry, "accepted") + server.count(registry, "refused") < reached:
            assert time.monotonic() < deadline, (
                "a connection was neither accepted nor refused",
                server.count(registry, "accepted"),
                server.count(registry, "refused"),
                unconnected,
                len(lines),
            )
            await asyncio.sleep(0.02)
        accepted = server.count(registry, "accepted")
        while len(lines) < accepted:
            assert time.monotonic() < deadline, f"{len(lines)} lines of {accepted} accepted"
            await asyncio.sleep(0.02)
        assert len(set(lines)) == len(lines) == accepted  # each accepted line once
        assert accepted >= 16
        _reader, controller = await asyncio.open_connection(*server.address)
        controller.write(b"level=info msg=hello\n")
        await controller.drain()
        while b"level=info msg=hello" not in lines:
            assert time.monotonic() < deadline, "the controller was not served after the flood"
            await asyncio.sleep(0.02)
        controller.close()
    finally:
        draining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await draining
