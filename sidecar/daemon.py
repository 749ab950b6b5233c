"""`event-sidecar run`: sources -> decoders -> poster, checkpoints, metrics and health, shutdown.

```
FileSource ──blocks (bounded, waits)──▶ BlockConsumer(lossless) ──┐
SocketSource ─blocks (bounded, waits)─▶ BlockConsumer(lossy) ─────┤ events ──▶ Poster ──▶ sink
                                                                  │  Posting | Mark   │
                                                    Checkpointer ◀┴──── commit(Mark) ◀┘
```
Backpressure, chosen per source: the file source's decoder *waits* for room in the Event queue
(the file is simply read later; nothing is lost, and its checkpoint stays behind); the socket
decoder never waits for the API: when the Event queue is full the Event is dropped and counted
(`events_dropped{cause="queue_full"}`), as client-go does. A socket is slowed down only when
decoding itself falls behind (its block queue is full), through TCP flow control.

Every task is named and supervised: if one ends, the daemon stops and `run` returns 1 after
logging which task failed and why. SIGTERM stops the sources, lets the decoders and the poster
finish what is queued within `drain_deadline` (what is left is counted as dropped with cause
`shutdown`; its lines are re-read at the next start since the checkpoint stays behind them),
writes the checkpoint and returns 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from sidecar.checkpoint import Checkpoint, read_checkpoint, remove_temporaries
from sidecar.checkpointer import Checkpointer
from sidecar.consumer import BlockConsumer
from sidecar.correlate import Correlator
from sidecar.exits import EXIT_FAILURE, EXIT_OK
from sidecar.http import bound_port, make_app, start_server
from sidecar.metrics import Metrics
from sidecar.pipeline import LinePipeline, Processor
from sidecar.poster import LineNamer, Poster, QueueItem
from sidecar.recorder import Recorder
from sidecar.reload import RulesReloader
from sidecar.rules import RuleSet
from sidecar.settings import DaemonSettings
from sidecar.sinks import Sink
from sidecar.sources import Block
from sidecar.sources.files import FileSource
from sidecar.sources.sockets import SocketSource
from sidecar.threads import WorkerThread
from sidecar.transitions import TransitionTracker

log = logging.getLogger(__name__)

CHECKPOINT_NAME = ".event-sidecar-checkpoint.json"
#: Seconds between checkpoint marks queued by the file decoder (half the write interval, so that
#: a write every interval has something new to write).
_MARK_FRACTION = 0.5


def default_checkpoint_path(paths: tuple[str, ...]) -> Path | None:
    """Next to the first file path, on the shared volume; None without a file source."""
    if not paths:
        return None
    return Path(paths[0]).absolute().parent / CHECKPOINT_NAME


class Daemon:
    """The running sidecar. `run` returns the process exit code."""

    def __init__(
        self,
        rules: RuleSet,
        sink: Sink,
        settings: DaemonSettings,
        metrics: Metrics,
        *,
        ping: Callable[[], object] | None = None,
        year: int | None = None,
        rules_path: str | None = None,
    ) -> None:
        self.rules = rules
        self.sink = sink
        self.settings = settings
        self.registry = metrics.registry
        self.metrics = metrics
        self._ping = ping
        self.api_reachable = ping is None
        queues = settings.queues
        component = settings.component or rules.component

        self.tracker = TransitionTracker(settings.transitions.max_keys)
        processor = Processor(rules, self.tracker)
        metrics.follow_states(self.tracker, time.time, settings.transitions.state_ttl)
        #: Reloads the rules when their file changes (SIGHUP, `POST /-/reload`); None without a
        #: file to reload from.
        self.reloader = (
            RulesReloader(
                rules_path, processor, metrics, settings.reload, watch=settings.files.watch
            )
            if rules_path
            else None
        )
        self.events: asyncio.Queue[QueueItem] = asyncio.Queue(queues.events)
        mark_interval = settings.checkpoint.interval * _MARK_FRACTION

        self.checkpointer: Checkpointer | None = None
        #: Opened at start-up (`_open_files`: it reads the checkpoint), not here.
        self.files: FileSource | None = None
        self.file_consumer: BlockConsumer | None = None
        if settings.files.paths:
            self._add_file_consumer(processor, year, mark_interval)
        self.sockets: SocketSource | None = None
        self.socket_consumer: BlockConsumer | None = None
        if settings.sockets.tcp or settings.sockets.unix:
            self._add_socket_source(processor, year, mark_interval)

        self.namer = LineNamer(component, settings.host)
        recorder = Recorder(
            sink=sink,
            correlator=Correlator(settings.correlation, time.time, self.namer),
            namer=self.namer,
            metrics=metrics,
            component=component,
            host=settings.host,
            clock=time.time,
            retry=settings.retry,
        )
        self.poster = Poster(
            self.events,
            recorder,
            self.namer,
            metrics,
            self.checkpointer.commit if self.checkpointer else _ignore,
        )
        self._runner: web.AppRunner | None = None
        #: The port `/metrics` is served on, once started.
        self.http_port = 0
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def _checkpoint_path(self) -> Path:
        """`--checkpoint`, or the default beside the first file."""
        files = self.settings.files
        if self.settings.checkpoint.path:
            return Path(self.settings.checkpoint.path)
        path = default_checkpoint_path(files.paths)
        assert path is not None
        return path

    def _add_file_consumer(
        self, processor: Processor, year: int | None, mark_interval: float
    ) -> None:
        """The file source's lossless decoder and its checkpointer (no disk I/O yet)."""
        files = self.settings.files
        self.checkpointer = Checkpointer(self._checkpoint_path(), self.settings.checkpoint.interval)
        blocks: asyncio.Queue[Block] = asyncio.Queue(self.settings.queues.blocks)
        pipeline = LinePipeline(processor, year=year, max_line_bytes=files.max_line_bytes)
        self.file_consumer = BlockConsumer(
            pipeline,
            self.metrics,
            blocks,
            self.events,
            self.tracker,
            source="file",
            lossless=True,
            mark_interval=mark_interval,
        )

    def _open_files(self) -> None:
        """At start-up: read the checkpoint to resume from, restore its transition state, and
        create the file source that resumes from its positions."""
        assert self.checkpointer is not None and self.file_consumer is not None
        files, checkpoint_path = self.settings.files, self.checkpointer.path
        resume = None if files.start == "beginning" else read_checkpoint(checkpoint_path)
        remove_temporaries(checkpoint_path)
        if resume is not None:
            self.tracker.restore([list(row) for row in resume.transitions])
            log.info(
                "resuming from checkpoint",
                extra={"path": str(checkpoint_path), "files": len(resume.files)},
            )
        self.files = FileSource(
            files,
            self.file_consumer.blocks,
            self.metrics,
            resume=resume,
            exclude=frozenset({str(checkpoint_path.resolve())}),
        )

    def _add_socket_source(
        self, processor: Processor, year: int | None, mark_interval: float
    ) -> None:
        """The socket source and its decoder, which drops rather than waits for the API."""
        sockets, metrics = self.settings.sockets, self.metrics
        blocks: asyncio.Queue[Block] = asyncio.Queue(self.settings.queues.blocks)
        self.sockets = SocketSource(sockets, blocks, metrics)
        pipeline = LinePipeline(processor, year=year, max_line_bytes=sockets.max_line_bytes)
        self.socket_consumer = BlockConsumer(
            pipeline,
            metrics,
            blocks,
            self.events,
            self.tracker,
            source="socket",
            lossless=False,
            mark_interval=mark_interval,
        )

    def readiness(self) -> Mapping[str, bool]:
        """What `/readyz` reports: sources open, rules loaded, API reachable."""
        sources = [source.ready for source in (self.files, self.sockets) if source is not None]
        return {
            "sources": bool(sources) and all(sources),
            "rules": bool(self.rules.rules),
            "api": self.api_reachable,
        }

    def stop(self) -> None:
        """Begin the graceful shutdown (what SIGTERM does)."""
        self._stop.set()

    async def run(self, *, install_signals: bool = False) -> int:
        """Run until `stop` (or SIGTERM/SIGINT with `install_signals`) or a task fails."""
        if self.file_consumer is None and self.sockets is None:
            log.error("no sources: give --file and/or --tcp / --unix")
            return EXIT_FAILURE
        loop = asyncio.get_running_loop()
        if install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop)
            if self.reloader is not None:
                loop.add_signal_handler(signal.SIGHUP, self.reloader.reload, True)
        try:
            return await self._run()
        finally:
            if install_signals:
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(signum)

    async def _run(self) -> int:
        """Bind, spawn the named tasks, and wait for a stop request or the first task to end."""
        http = self.settings.http
        try:
            if self.file_consumer is not None:
                self._open_files()
            app = make_app(self.registry, self.readiness)
            if self.reloader is not None:
                self.reloader.start()
                if self.settings.reload.endpoint:
                    self.reloader.add_route(app)
            self._runner = await start_server(app, http.host, http.port)
            if self.sockets is not None:
                await self.sockets.start()
        except OSError as error:
            log.error("cannot start: %s", error)
            await self._close_http()
            return EXIT_FAILURE
        self.http_port = bound_port(self._runner)
        log.info(
            "started",
            extra={
                "metrics": f"{http.host}:{self.http_port}",
                "files": list(self.settings.files.paths),
                "sockets": self.sockets.addresses if self.sockets else [],
                "rules": len(self.rules.rules),
            },
        )
        self._spawn("poster", self.poster.run())
        if self.files is not None and self.file_consumer is not None:
            self._spawn("file-decoder", self.file_consumer.run())
            self._spawn("file-source", self.files.run())
        if self.sockets is not None and self.socket_consumer is not None:
            self._spawn("socket-decoder", self.socket_consumer.run())
            self._spawn("socket-source", self.sockets.run())
        if self.checkpointer is not None:
            self._spawn("checkpointer", self.checkpointer.run())
        if self._ping is not None:
            self._spawn("api-ping", self._ping_forever(self._ping))
        if self.reloader is not None:
            self._spawn("rules-reload", self.reloader.run())

        stopping = asyncio.create_task(self._stop.wait(), name="stop-signal")
        done, _ = await asyncio.wait(
            [stopping, *self._tasks.values()], return_when=asyncio.FIRST_COMPLETED
        )
        stopping.cancel()
        failed = [task for task in done if task is not stopping]
        if failed:
            task = failed[0]
            failure = None if task.cancelled() else task.exception()
            log.error(
                "task %s stopped unexpectedly: %s",
                task.get_name(),
                failure or "it returned",
                exc_info=failure,
            )
            await self._abort()
            return EXIT_FAILURE
        log.info(
            "stopping: draining queued Events",
            extra={"deadline": self.settings.queues.drain_deadline},
        )
        return await self._drain()

    def _spawn(self, name: str, coroutine: Coroutine[Any, Any, None]) -> None:
        """Start a supervised task; its name is what a failure report says."""
        self._tasks[name] = asyncio.create_task(coroutine, name=name)

    async def _cancel(self, *names: str) -> None:
        """Cancel the named tasks and wait for them (their errors no longer matter)."""
        tasks = [self._tasks.pop(name) for name in names if name in self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _drain(self) -> int:
        """Stop reading, write what is queued within the deadline, checkpoint, stop serving."""
        deadline = time.monotonic() + self.settings.queues.drain_deadline
        await self._cancel("file-source", "socket-source")
        for name, decoder in (
            ("file-decoder", self.file_consumer),
            ("socket-decoder", self.socket_consumer),
        ):
            if decoder is None:
                continue
            try:
                await asyncio.wait_for(decoder.blocks.join(), max(0.0, deadline - time.monotonic()))
                decoded_all = True
            except TimeoutError:
                decoded_all = False
            await self._cancel(name)
            # Only when every block was decoded do the positions and the transition state agree;
            # a half-decoded block must be read again, so its mark is never queued.
            if decoder.lossless and decoded_all:
                await decoder.mark(wait=False)
        try:
            await asyncio.wait_for(self.events.join(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            await self._cancel("poster")
            dropped = self.poster.drop_queued("shutdown")
            log.warning("drain deadline passed; Events dropped", extra={"dropped": dropped})
        await self._abort()
        writes = self.checkpointer.writes if self.checkpointer is not None else 0
        log.info("stopped", extra={"outcomes": self.poster.outcomes, "checkpoint_writes": writes})
        return EXIT_OK

    async def _abort(self) -> None:
        """Cancel every task, save what is committed, stop serving."""
        await self._cancel(*list(self._tasks))
        if self.checkpointer is not None:
            try:
                await self.checkpointer.write()
            except OSError as error:
                log.error("cannot write the checkpoint: %s", error)
            self.checkpointer.close()
        await self._close_http()

    async def _close_http(self) -> None:
        """Stop serving /metrics and the probes (last, so they answer during the drain)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _ping_forever(self, ping: Callable[[], object]) -> None:
        """Keep `api_reachable` current for `/readyz`.

        On its own daemon thread, so that a ping hanging until its timeout neither delays the
        poster nor holds up the exit (asyncio waits for its default executor's threads).
        """
        worker = WorkerThread("event-sidecar-ping")
        try:
            while True:
                try:
                    await worker.call(ping)
                except Exception as failure:  # any failure means "not reachable"
                    if self.api_reachable:
                        log.warning("the API is not reachable: %s", failure)
                    self.api_reachable = False
                else:
                    self.api_reachable = True
                await asyncio.sleep(self.settings.http.ping_interval)
        finally:
            worker.close()


def _ignore(_: Checkpoint) -> None:
    """No file source, nothing to checkpoint."""
