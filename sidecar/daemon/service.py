"""`event-sidecar run`: sources -> decoders -> poster, checkpoints, metrics and health, shutdown.

```
FileSource ──blocks (bounded, waits)──▶ BlockConsumer(lossless) ──┐
SocketSource ─blocks (bounded, waits)─▶ BlockConsumer(lossy) ─────┤ events ──▶ Poster ──▶ sink
PodLogSource ─blocks (bounded, waits)─▶ BlockConsumer(lossless) ──┤
                                                                  │  Posting | Mark   │
                                                    Checkpointer ◀┴──── commit(Mark) ◀┘
```
Backpressure, chosen per source: the file source's decoder *waits* for room in the Event queue
(the file is simply read later; nothing is lost, and its checkpoint stays behind); the socket
decoder never waits for the API: when the Event queue is full the Event is dropped and counted
(`events_dropped{cause="queue_full"}`), as client-go does. A socket is slowed down only when
decoding itself falls behind (its block queue is full), through TCP flow control. The pod log
source is lossless like files: meanwhile its stream simply is not read.

The sources and their decoders are built, and resumed from the checkpoint, by
`sidecar.daemon.wiring`; the tasks are supervised by `sidecar.runtime.tasks`.

Every task is named and supervised: if one ends, `/healthz` turns 503 at once (naming the task),
the daemon stops and `run` returns 1 after logging which task failed and why. SIGTERM stops the
sources, lets the decoders and the poster finish what is queued within `drain_deadline` (what is
left is counted as dropped with cause `shutdown`; its lines are re-read at the next start since
the checkpoint stays behind them), writes the checkpoint and returns 0.

Every wait of the shutdown is bounded, whatever ended it: a task that does not stop when
cancelled, a checkpoint write stuck on a frozen volume or a probe connection that stays open is
logged and left behind, so that the process ends within `drain_deadline` plus `_SHUTDOWN_GRACE`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

from sidecar.core.correlate import Correlator
from sidecar.core.events.series import SeriesCache
from sidecar.core.exits import EXIT_FAILURE, EXIT_OK
from sidecar.core.pipeline import Processor
from sidecar.core.rules import RuleSet
from sidecar.core.rules.tracking import meanings
from sidecar.core.settings import DaemonSettings
from sidecar.core.transitions import TransitionTracker
from sidecar.daemon.consumer import BlockConsumer
from sidecar.daemon.reload import RulesReloader
from sidecar.daemon.sourcehealth import (
    SourceWatch,
)
from sidecar.daemon.wiring import SourceWiring
from sidecar.recording.naming import LineNamer
from sidecar.recording.poster import Poster
from sidecar.recording.queue import QueueItem, Tick
from sidecar.recording.recorder import Recorder
from sidecar.recording.recorder_eventsv1 import ModernRecorder
from sidecar.runtime.checkpoints import Checkpoint
from sidecar.runtime.metrics import Metrics
from sidecar.runtime.sinks import Sink
from sidecar.runtime.status_server import StatusServer
from sidecar.runtime.tasks import Supervisor, until
from sidecar.runtime.threads import WorkerThread, call_once
from sidecar.sources.podlog import LogAPI

log = logging.getLogger(__name__)

#: Seconds between checkpoint marks queued by the file decoder (half the write interval, so that
#: a write every interval has something new to write).
_MARK_FRACTION = 0.5
#: Seconds the shutdown may take past the drain deadline: cancelled tasks stopping, the last
#: checkpoint write, the HTTP server closing (each bounded by what is left of it).
_SHUTDOWN_GRACE = 5.0


class Daemon(SourceWiring):
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
        pod_log_api: LogAPI | None = None,
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
        self.tracker.meanings = meanings(rules)
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
        self._stop = asyncio.Event()
        #: Says when a source cannot be read for good (`sidecar.daemon.sourcehealth`).
        self.source_watch = SourceWatch(
            metrics,
            self.events,
            after=settings.http.unreadable_seconds,
            pod=settings.pod_log.pod,
            namespace=settings.pod_log.namespace,
            stopping=self._stop.is_set,
        )

        self._add_sources(processor, year, mark_interval, pod_log_api)

        self.namer = LineNamer(component, settings.host)
        self.correlator = Correlator(settings.correlation, self.namer)
        recorder_class: type[Recorder] = Recorder
        extra: dict[str, Any] = {}
        #: `auto` is resolved by the caller (it needs the cluster); unresolved, it means core/v1.
        self.events_api = "events.k8s.io/v1" if settings.events_api == "events.k8s.io/v1" else "v1"
        if self.events_api == "events.k8s.io/v1":
            recorder_class = ModernRecorder
            extra["series"] = SeriesCache(finish_seconds=settings.series_finish_seconds)
        metrics.events_api.labels(self.events_api).set(1)
        recorder = recorder_class(
            sink=sink,
            correlator=self.correlator,
            namer=self.namer,
            metrics=metrics,
            component=component,
            host=settings.host,
            clock=time.time,
            retry=settings.retry,
            **extra,
        )
        self.recorder = recorder
        self.poster = Poster(
            self.events,
            recorder,
            self.namer,
            metrics,
            self.checkpointer.commit if self.checkpointer else _ignore,
            writes=settings.queues.writes,
        )
        self._status: StatusServer | None = None
        #: The port `/metrics` is served on, once started.
        self.http_port = 0
        self._tasks = Supervisor(logger=log)
        #: The supervised task that ended on its own, once one did (for `/healthz`).
        self.failed_task: str | None = None

    def readiness(self) -> Mapping[str, bool]:
        """What `/readyz` reports: sources open, rules loaded, API reachable."""
        sources = [
            source.ready
            for source in (self.files, self.sockets, self.pod_log)
            if source is not None
        ]
        return {
            "sources": bool(sources) and all(sources),
            # A source failing for good, where `sources` also flips while a stream reconnects:
            # what the injected readiness probe asks (`/readyz?exclude=sources&exclude=api`).
            "sources_readable": self.source_watch.readable,
            "rules": bool(self.rules.rules),
            "api": self.api_reachable,
        }

    def liveness(self) -> Mapping[str, bool]:
        """What `/healthz` checks: no supervised task has ended on its own.

        A daemon whose file source died reads nothing more; the kubelet must see it, even if the
        shutdown that follows were to hang.
        """
        ended = self._tasks.ended()
        if ended and self.failed_task is None and not self._stop.is_set():
            self.failed_task = ended[0]
        return {"tasks": self.failed_task is None}

    def stop(self) -> None:
        """Begin the graceful shutdown (what SIGTERM does)."""
        self._stop.set()

    async def run(self, *, install_signals: bool = False) -> int:
        """Run until `stop` (or SIGTERM/SIGINT with `install_signals`) or a task fails."""
        if self.settings.pod_log.container and self.file_consumer is not None:
            # One checkpoint holds one lossless source's positions with the transition state.
            log.error("--file and --pod-log cannot be combined: pick one lossless source")
            return EXIT_FAILURE
        if self.file_consumer is None and self.sockets is None and self.pod_log_consumer is None:
            log.error("no sources: give --file, --tcp / --unix, or --pod-log")
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
            if self.pod_log_consumer is not None:
                self._open_pod_log()
            if self.reloader is not None:
                self.reloader.start()
            reload = (
                self.reloader.answer
                if self.reloader is not None and self.settings.reload.endpoint
                else None
            )
            self._status = StatusServer(
                self.registry,
                self.readiness,
                asyncio.get_running_loop(),
                liveness=self.liveness,
                reload=reload,
            )
            self.http_port = self._status.start(http.host, http.port)
            # The tracker changes on this loop: scrapes count it here too, never on their thread.
            self.metrics.census_on(self._status.on_loop)
            if self.sockets is not None:
                await self.sockets.start()
        except OSError as error:
            log.error("cannot start: %s", error)
            await self._close_http()
            return EXIT_FAILURE
        log.info(
            "started",
            extra={
                "metrics": f"{http.host}:{self.http_port}",
                "files": list(self.settings.files.paths),
                "sockets": self.sockets.addresses if self.sockets else [],
                "rules": len(self.rules.rules),
            },
        )
        spawn = self._tasks.spawn
        spawn("poster", self.poster.run())
        if self.files is not None and self.file_consumer is not None:
            spawn("file-decoder", self.file_consumer.run())
            spawn("file-source", self.files.run())
        if self.sockets is not None and self.socket_consumer is not None:
            spawn("socket-decoder", self.socket_consumer.run())
            spawn("socket-source", self.sockets.run())
        if self.pod_log is not None and self.pod_log_consumer is not None:
            spawn("pod-log-decoder", self.pod_log_consumer.run())
            spawn("pod-log-source", self.pod_log.run())
        if self.checkpointer is not None:
            spawn("checkpointer", self.checkpointer.run())
        if self._ping is not None:
            spawn("api-ping", self._ping_forever(self._ping))
        if isinstance(self.recorder, ModernRecorder):
            spawn("series-heartbeat", self._heartbeat_forever())
        if self.reloader is not None:
            spawn("rules-reload", self.reloader.run())
        if self.source_watch.watched:
            spawn("source-watch", self.source_watch.run())

        failed = await self._tasks.first_end(self._stop)  # a failure is logged by then
        self._tasks.stopping()
        if failed is not None:
            self.failed_task = self.failed_task or failed
            await self._abort(time.monotonic() + self.settings.queues.drain_deadline)
            return EXIT_FAILURE
        log.info(
            "stopping: draining queued Events",
            extra={"deadline": self.settings.queues.drain_deadline},
        )
        return await self._drain()

    async def _drain(self) -> int:
        """Stop reading, write what is queued within the deadline, checkpoint, stop serving."""
        deadline = time.monotonic() + self.settings.queues.drain_deadline
        await self._tasks.cancel(
            "file-source",
            "socket-source",
            "pod-log-source",
            "series-heartbeat",
            deadline=deadline + _SHUTDOWN_GRACE,
        )
        decoded: list[BlockConsumer] = []
        for name, decoder in (
            ("file-decoder", self.file_consumer),
            ("socket-decoder", self.socket_consumer),
            ("pod-log-decoder", self.pod_log_consumer),
        ):
            if decoder is None:
                continue
            try:
                async with until(deadline):
                    await decoder.blocks.join()
                decoded.append(decoder)
            except TimeoutError:
                pass
            await self._tasks.cancel(name, deadline=deadline + _SHUTDOWN_GRACE)
        if isinstance(self.recorder, ModernRecorder):
            # Every series count still only in memory, decided before the last marks so that
            # the last checkpoint holds them as written.
            try:
                async with until(deadline):
                    await self.events.put(Tick("pending"))
            except TimeoutError:
                log.warning("drain deadline passed before the series counts were written")
        # Only when every block was decoded do the positions and the transition state agree;
        # a half-decoded block must be read again, so its mark is never queued.
        for decoder in decoded:
            if decoder.lossless:
                await decoder.mark(wait=False)
        try:
            async with until(deadline):
                await self.events.join()
        except TimeoutError:
            await self._tasks.cancel("poster", deadline=deadline + _SHUTDOWN_GRACE)
            dropped = self.poster.drop_queued("shutdown")
            log.warning("drain deadline passed; Events dropped", extra={"dropped": dropped})
        await self._abort(deadline)
        writes = self.checkpointer.writes if self.checkpointer is not None else 0
        log.info("stopped", extra={"outcomes": self.poster.outcomes, "checkpoint_writes": writes})
        return EXIT_OK

    async def _abort(self, deadline: float) -> None:
        """Cancel every task, save what is committed, stop serving: all within the grace that
        follows `deadline`."""
        end = deadline + _SHUTDOWN_GRACE
        await self._tasks.cancel(deadline=end)
        if self.checkpointer is not None:
            try:
                async with until(end):
                    await self.checkpointer.write()
            except OSError as error:
                log.error("cannot write the checkpoint: %s", error)
            except TimeoutError:
                log.error("the checkpoint write did not finish in time; the previous one stays")
            self.checkpointer.close()
        try:
            async with until(max(end, time.monotonic() + 0.1)):
                await self.poster.close()
        except TimeoutError:
            log.warning("the API connections did not close in time")
        await self._close_http(end)

    async def _close_http(self, deadline: float | None = None) -> None:
        """Stop serving /metrics and the probes (last, so they answer during the drain)."""
        if self._status is not None:
            status, self._status = self._status, None
            end = time.monotonic() + _SHUTDOWN_GRACE if deadline is None else deadline
            try:
                # On a thread: stopping waits for the server's poll, which must not stall the loop.
                async with until(max(end, time.monotonic() + 0.1)):
                    await call_once("event-sidecar-http-close", status.close)
            except TimeoutError:
                log.warning("the HTTP server did not close in time")

    async def _heartbeat_forever(self) -> None:
        """client-go's series heartbeat: every finish period, a `Tick` in the Event queue, so
        that the poster decides the writes that close the quiet series and refresh the long
        ones in order with the Events and the checkpoint marks."""
        while True:
            await asyncio.sleep(self.settings.series_finish_seconds)
            await self.events.put(Tick("due"))

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
