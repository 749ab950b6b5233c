"""The block consumer's loop: it feeds blocks on, and a cancellation always stops it."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from sidecar.core.pipeline import LinePipeline, Processor
from sidecar.core.rules import compile_rules, parse_rules
from sidecar.core.transitions import TransitionTracker
from sidecar.daemon.consumer import BlockConsumer
from sidecar.recording.queue import Mark, Posting, QueueItem
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block
from tests.daemon_support import RULES, phase_line


def consumer(mark_interval: float = 60.0) -> BlockConsumer:
    tracker = TransitionTracker()
    rules = compile_rules(parse_rules(RULES, "rules.yaml"))
    pipeline = LinePipeline(Processor(rules, tracker), year=None, max_line_bytes=4096)
    blocks: asyncio.Queue[Block] = asyncio.Queue(4)
    events: asyncio.Queue[QueueItem] = asyncio.Queue(16)
    return BlockConsumer(
        pipeline,
        Metrics(CollectorRegistry()),
        blocks,
        events,
        tracker,
        source="file",
        lossless=True,
        mark_interval=mark_interval,
    )


async def test_a_cancellation_that_arrives_with_a_block_still_stops_the_consumer() -> None:
    # Python 3.11's `asyncio.wait_for` returns the block and drops the cancellation when both
    # arrive in the same loop iteration: the daemon then waited for this task forever.
    decoder = consumer()
    running = asyncio.create_task(decoder.run())
    await asyncio.sleep(0.01)  # waiting for a block
    decoder.blocks.put_nowait(Block(phase_line("ns", "obj", "Ready"), 0, 0.0))
    running.cancel()
    done, _ = await asyncio.wait([running], timeout=2)
    assert done == {running}
    assert running.cancelled()


async def test_blocks_are_decoded_into_queued_events_and_a_quiet_spell_marks() -> None:
    decoder = consumer(mark_interval=0.05)
    running = asyncio.create_task(decoder.run())
    try:
        decoder.blocks.put_nowait(Block(phase_line("ns", "obj", "Ready"), 0, 0.0, positions=()))
        await asyncio.wait_for(decoder.blocks.join(), 2)
        first = await asyncio.wait_for(decoder.events.get(), 2)
        assert isinstance(first, Posting)
        assert first.spec.message == "phase none -> Ready"
        mark = await asyncio.wait_for(decoder.events.get(), 2)  # after mark_interval of quiet
        assert isinstance(mark, Mark)
    finally:
        running.cancel()
