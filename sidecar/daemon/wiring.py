"""How `run` builds its sources from the settings and resumes them from the checkpoint: each
source with its decoder (`BlockConsumer`: its own bounded block queue, the shared Event queue and
transition state), and the checkpointer of the lossless one (`Daemon`, in `service`, runs them).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

from sidecar.core.correlate import Correlator
from sidecar.core.pipeline import LinePipeline, Processor
from sidecar.core.settings import DaemonSettings
from sidecar.core.transitions import TransitionTracker
from sidecar.daemon.checkpoint_writer import Checkpointer
from sidecar.daemon.consumer import BlockConsumer
from sidecar.daemon.sourcehealth import (
    FILE_REASONS,
    POD_LOG_REASONS,
    SourceWatch,
    WatchedLogAPI,
    file_failure,
)
from sidecar.recording.queue import QueueItem
from sidecar.recording.recorder import Recorder
from sidecar.recording.recorder_eventsv1 import ModernRecorder
from sidecar.runtime.checkpoints import Checkpoint, read_checkpoint, remove_temporaries
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block
from sidecar.sources.files import FileSource
from sidecar.sources.podlog import LogAPI, PodLogSource
from sidecar.sources.sockets import SocketSource

#: The daemon's logger, as before this module was split out of it.
log = logging.getLogger("sidecar.daemon.service")

CHECKPOINT_NAME = ".event-sidecar-checkpoint.json"


def default_checkpoint_path(paths: tuple[str, ...]) -> Path | None:
    """Next to the first file path, on the shared volume; None without a file source."""
    if not paths:
        return None
    return Path(paths[0]).absolute().parent / CHECKPOINT_NAME


class SourceWiring:
    """The sources and their decoders of a `Daemon` (what they need from it is declared here)."""

    settings: DaemonSettings
    metrics: Metrics
    events: asyncio.Queue[QueueItem]
    tracker: TransitionTracker
    correlator: Correlator
    recorder: Recorder
    source_watch: SourceWatch
    checkpointer: Checkpointer | None
    files: FileSource | None
    file_consumer: BlockConsumer | None
    sockets: SocketSource | None
    socket_consumer: BlockConsumer | None
    pod_log: PodLogSource | None
    pod_log_consumer: BlockConsumer | None
    _pod_log_api: LogAPI | None

    def _add_sources(
        self,
        processor: Processor,
        year: int | None,
        mark_interval: float,
        pod_log_api: LogAPI | None,
    ) -> None:
        """Each source the settings name, with its decoder (none is opened yet)."""
        self.checkpointer = None
        #: Opened at start-up (`_open_files`: it reads the checkpoint), not here.
        self.files = None
        self.file_consumer = None
        if self.settings.files.paths:
            self._add_file_consumer(processor, year, mark_interval)
        self.sockets = None
        self.socket_consumer = None
        if self.settings.sockets.tcp or self.settings.sockets.unix:
            self._add_socket_source(processor, year, mark_interval)
        #: Opened at start-up (`_open_pod_log`: it reads the checkpoint), not here.
        self.pod_log = None
        self.pod_log_consumer = None
        self._pod_log_api = None
        if pod_log_api is not None:
            watched = WatchedLogAPI(pod_log_api)
            self._pod_log_api = watched
            if self.settings.pod_log.container:
                self.source_watch.watch("pod-log", watched.failure, POD_LOG_REASONS)
        if (
            self.settings.pod_log.container
            and pod_log_api is not None
            and self.checkpointer is None
        ):
            self._add_pod_log_consumer(processor, year, mark_interval)

    def _checkpoint_path(self) -> Path:
        """`--checkpoint`, or the default beside the first file."""
        files = self.settings.files
        if self.settings.checkpoint.path:
            return Path(self.settings.checkpoint.path)
        path = default_checkpoint_path(files.paths)
        assert path is not None
        return path

    def _consumer(
        self,
        processor: Processor,
        year: int | None,
        max_line_bytes: int,
        source: str,
        *,
        lossless: bool,
        mark_interval: float,
    ) -> BlockConsumer:
        """A source's decoder: its own bounded block queue and pipeline, the shared Event queue
        and transition state."""
        blocks: asyncio.Queue[Block] = asyncio.Queue(self.settings.queues.blocks)
        pipeline = LinePipeline(processor, year=year, max_line_bytes=max_line_bytes)
        return BlockConsumer(
            pipeline,
            self.metrics,
            blocks,
            self.events,
            self.tracker,
            source=source,
            lossless=lossless,
            mark_interval=mark_interval,
        )

    def _add_file_consumer(
        self, processor: Processor, year: int | None, mark_interval: float
    ) -> None:
        """The file source's lossless decoder and its checkpointer (no disk I/O yet)."""
        files = self.settings.files
        self.checkpointer = Checkpointer(self._checkpoint_path(), self.settings.checkpoint.interval)
        self.file_consumer = self._consumer(
            processor,
            year,
            files.max_line_bytes,
            "file",
            lossless=True,
            mark_interval=mark_interval,
        )

    def _open_files(self) -> None:
        """At start-up: read the checkpoint to resume from, restore its transition and
        correlation state, and create the file source that resumes from its positions.

        `--start` is for a first start only: once a checkpoint exists, a restart (a crash, a
        new container in the same pod) resumes from it whatever `--start` says, so that neither
        a restart with `end` loses what was logged while the sidecar was down nor one with
        `beginning` writes everything again. Remove the checkpoint to start afresh.
        """
        assert self.checkpointer is not None and self.file_consumer is not None
        files, checkpoint_path = self.settings.files, self.checkpointer.path
        resume = read_checkpoint(checkpoint_path)
        remove_temporaries(checkpoint_path)
        if resume is not None:
            self._restore(resume)
            log.info(
                "resuming from checkpoint",
                extra={
                    "path": str(checkpoint_path),
                    "files": len(resume.files),
                    "ignored_start": files.start if files.start != "checkpoint" else None,
                },
            )
            files = replace(files, start="checkpoint")
        self.files = FileSource(
            files,
            self.file_consumer.blocks,
            self.metrics,
            resume=resume,
            exclude=frozenset({str(checkpoint_path.resolve())}),
        )
        source, patterns = self.files, files.paths
        self.source_watch.watch("file", lambda: file_failure(patterns, source), FILE_REASONS)

    def _restore(self, checkpoint: Checkpoint) -> None:
        """Take up the transition, correlation and series state saved with the positions."""
        saved = None if checkpoint.trackers is None else dict(checkpoint.trackers)
        dropped = self.tracker.restore([list(row) for row in checkpoint.transitions], saved)
        if dropped:
            log.info(
                "transition state dropped: the trackers' rules changed",
                extra={"trackers": dropped},
            )
        self.correlator.restore(checkpoint.correlation)
        if isinstance(self.recorder, ModernRecorder):
            self.recorder.series.restore(checkpoint.series)
            pending = sum(
                1 for record in checkpoint.series if record.stored < record.event.series_count
            )
            if pending:
                log.info("series counts not written before the restart", extra={"series": pending})

    def _add_pod_log_consumer(
        self, processor: Processor, year: int | None, mark_interval: float
    ) -> None:
        """The pod log source's lossless decoder, and its checkpointer when `--checkpoint` names
        a file (there is no shared volume to default to; without one a start reads the current
        instance from its first line)."""
        pod_log = self.settings.pod_log
        if self.settings.checkpoint.path:
            self.checkpointer = Checkpointer(
                Path(self.settings.checkpoint.path), self.settings.checkpoint.interval
            )
        self.pod_log_consumer = self._consumer(
            processor,
            year,
            pod_log.max_line_bytes,
            "pod-log",
            lossless=True,
            mark_interval=mark_interval,
        )

    def _open_pod_log(self) -> None:
        """At start-up: resume from the checkpoint's position for the container, if any."""
        assert self.pod_log_consumer is not None and self._pod_log_api is not None
        pod_log, resume = self.settings.pod_log, None
        if self.checkpointer is not None:
            saved = read_checkpoint(self.checkpointer.path)
            remove_temporaries(self.checkpointer.path)
            if saved is not None:
                self._restore(saved)
                resume = next((p for p in saved.pod_logs if p.container == pod_log.container), None)
                log.info("resuming from checkpoint", extra={"path": str(self.checkpointer.path)})
        self.pod_log = PodLogSource(
            pod_log, self._pod_log_api, self.pod_log_consumer.blocks, self.metrics, resume=resume
        )

    def _add_socket_source(
        self, processor: Processor, year: int | None, mark_interval: float
    ) -> None:
        """The socket source and its decoder, which drops rather than waits for the API."""
        sockets = self.settings.sockets
        consumer = self._consumer(
            processor,
            year,
            sockets.max_line_bytes,
            "socket",
            lossless=False,
            mark_interval=mark_interval,
        )
        self.sockets = SocketSource(sockets, consumer.blocks, self.metrics)
        self.socket_consumer = consumer
