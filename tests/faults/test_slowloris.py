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

from sidecar.metrics import Metrics
from sidecar.settings import SocketSettings
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
