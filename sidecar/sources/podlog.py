"""The pod log source: a sibling container's stdout/stderr through the pod log API.

For the controller that writes only to stdout (zap's default, a distroless image): nothing about
it has to change. The stream is the one `kubectl logs -f --timestamps` reads; every line carries
the kubelet's timestamp, which is what makes resuming exact (see `sidecar.core.lines.stamps`).

The loop, until cancelled:

1. Read the pod's status for the container's current instance (id and restart count).
2. Same instance as the position: follow from a second before the position (`sinceTime`),
   skipping what was recorded. Another instance, one restart later: first read the previous
   instance's tail (`previous=true`) from the position, then follow the new one from its start.
   More than one restart later: the instances in between were never read; each is counted as a gap.
3. The stream ended (container exit, apiserver or network failure): wait (backoff, reset by any
   line read) and start again at 1.

Framing is in two steps: the stream is cut into lines, each line's timestamp taken off (and the
line skipped if a resumed stream shows it again), and the controller's own bytes then go through
the same `LineFramer` as every other source's, which holds a multi-line record (a Go panic) back
until it ends, whichever HTTP chunks it came in, and a line that ended a chunk for up to `linger`
seconds while its stack (a traceback) may still come in the next one. A block's position is that
of its last line, never of a line held back. Lines held back when a followed stream ends are not
lost: the next stream shows them again.

Every gap that cannot be closed is counted once in `event_sidecar_pod_log_gaps{reason}`:
`instance_missed` (a whole instance came and went unread), `previous_unavailable` (the previous
instance's log is gone), `rotated` (a resumed stream does not reach back to the last line read:
the kubelet rotated it away). Lines a resumed stream shows again are counted as skipped
(`pod_log_lines_skipped`).

A followed stream that stays silent for `stall_check` seconds is checked against a one-off read of
the log: a server that reads the log file as the kubelet does (kwok) keeps its offset when the file
is truncated, and its stream stalls, silently, until the file grows past that offset again. When
the log holds lines the stream did not deliver (still, a second later), the stream is dropped and
opened again; when none of the lines recorded lately is in the log any more, it was truncated
(`pod_log_truncations`), and the new stream reads it from its start.

Backpressure: like the file source, it waits for room in the block queue; meanwhile the stream is
not read and the apiserver's and kubelet's buffers fill (HTTP flow control); what does not fit is
read again after a reconnect from the last recorded position.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from sidecar.core.lines.scan import LineFramer
from sidecar.core.lines.stamps import NANOSECONDS, ResumeFilter, format_since, line_key, split_stamp
from sidecar.core.settings import PodLogSettings
from sidecar.model import ContainerInstance, PodLogError, PodLogPosition
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block

log = logging.getLogger(__name__)

#: Room for the kubelet's timestamp prefix on top of the controller's longest line.
_STAMP_ROOM = 64
GAP_REASONS = ("instance_missed", "previous_unavailable", "rotated")
#: Seconds a stream found behind the log is given to catch up before it is taken as stalled:
#: the look may have caught lines the stream was about to send.
_STALL_GRACE = 1.0


class LogAPI(Protocol):
    """What the source needs from the Kubernetes edge (`sidecar.kube.podlogs.PodLogClient`)."""

    async def instance(
        self, namespace: str, pod: str, container: str
    ) -> ContainerInstance | None: ...

    def stream(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        since: str | None,
        previous: bool = False,
        follow: bool = True,
    ) -> AsyncIterator[bytes]: ...


class _Framing:
    """One stream's two framers, and the lines admitted but not yet handed over."""

    def __init__(self, limit: int) -> None:
        #: The stream's lines, timestamps and all.
        self.lines = LineFramer(limit + _STAMP_ROOM, records=False)
        #: The controller's own bytes, framed into records.
        self.records = LineFramer(limit)
        #: (end in the bytes fed to `records`, stamp, key) of each admitted line not handed over.
        self.waiting: deque[tuple[int, int, str]] = deque()
        self.fed = 0
        self.handed = 0


#: Bytes: a chunk at least this large is a stream behind its log (a backlog read after a
#: restart), which is read on at once; below it, the stream is live and the next read waits
#: `settle_time` (so the wait slows no stream that brings more than this per settle time).
_SETTLE_BELOW = 16 * 1024


async def _next(chunks: AsyncIterator[bytes]) -> bytes | None:
    return await anext(chunks, None)


class PodLogSource:
    """Follows one container's log and puts its lines on `blocks` with their positions."""

    def __init__(
        self,
        settings: PodLogSettings,
        api: LogAPI,
        blocks: asyncio.Queue[Block],
        metrics: Metrics,
        *,
        resume: PodLogPosition | None = None,
        name: str = "pod-log",
    ) -> None:
        self.settings = settings
        self.api = api
        self.blocks = blocks
        self.metrics = metrics
        self.name = name
        if resume is not None and resume.container != settings.container:
            resume = None
        self.filter = ResumeFilter.from_position(resume) if resume else ResumeFilter()
        self.instance = (
            ContainerInstance(resume.container_id, resume.restart_count) if resume else None
        )
        #: A stream is open (`/readyz`).
        self.ready = False
        for reason in GAP_REASONS:
            metrics.pod_log_gaps.labels(reason)

    async def run(self) -> None:
        """Until cancelled."""
        settings = self.settings
        delay = settings.backoff_initial
        while True:
            read = 0
            try:
                read = await self._once()
            except PodLogError as error:
                log.warning("pod log: %s", error, extra={"source": self.name})
            finally:
                self.ready = False
            self.metrics.pod_log_reconnects.inc()
            delay = settings.backoff_initial if read else min(delay * 2, settings.backoff_max)
            await asyncio.sleep(delay)

    async def _once(self) -> int:
        """One round of steps 1 and 2; the number of lines read."""
        settings = self.settings
        current = await self.api.instance(settings.namespace, settings.pod, settings.container)
        if current is None:
            return 0
        known = self.instance
        read = 0
        if known is not None and current.container_id == known.container_id:
            since = self.filter.since()
            self.filter.reconnect()
        else:
            if known is not None:
                missed = current.restart_count - known.restart_count - 1
                if missed > 0:
                    self.metrics.pod_log_gaps.labels("instance_missed").inc(missed)
                    log.warning(
                        "pod log: %d container instance(s) came and went unread",
                        missed,
                        extra={"source": self.name},
                    )
                elif missed == 0:
                    read += await self._read_previous()
            # A new instance (or a first start without a position): its whole log is news.
            self.filter.restart()
            since = None
        self.instance = current
        read += await self._read(since, previous=False)
        return read

    async def _read_previous(self) -> int:
        """The tail of the instance the position is in, now the previous one. Unreadable, it is
        one gap (`previous_unavailable`), and the new instance is read from its start with
        nothing to prove: no second gap."""
        since = self.filter.since()
        self.filter.reconnect()
        try:
            return await self._read(since, previous=True)
        except PodLogError as error:
            if error.status == 0:
                raise
            self.metrics.pod_log_gaps.labels("previous_unavailable").inc()
            log.warning("pod log: previous instance unreadable: %s", error)
            return 0

    def _open(self, since: int | None, *, previous: bool, follow: bool) -> AsyncIterator[bytes]:
        settings = self.settings
        return self.api.stream(
            settings.namespace,
            settings.pod,
            settings.container,
            since=None if since is None else format_since(since),
            previous=previous,
            follow=follow,
        )

    async def _read(self, since: int | None, *, previous: bool) -> int:
        """Stream, frame, de-duplicate and queue; the number of new lines."""
        settings = self.settings
        framing = _Framing(settings.max_line_bytes)
        instance = self.instance
        assert instance is not None
        read = 0
        chunks = self._open(since, previous=previous, follow=not previous)
        self.ready = not previous
        pending: asyncio.Task[bytes | None] | None = None
        settled = 0.0  # seconds already waited since the last chunk (the settle time)
        try:
            while True:
                pending = asyncio.create_task(_next(chunks))
                if framing.records.lingering:
                    await self._linger(framing, pending, instance, settled)
                settled = 0.0
                while not previous:
                    done, _ = await asyncio.wait({pending}, timeout=settings.stall_check)
                    if done:
                        break
                    truncated = await self._undelivered(framing)
                    if truncated is None:
                        continue
                    # Lines written just now may be in the look but not yet in the stream.
                    grace = min(settings.stall_check, _STALL_GRACE)
                    done, _ = await asyncio.wait({pending}, timeout=grace)
                    if done:
                        break
                    self._stalled(truncated=truncated)
                    return read
                chunk = await pending
                pending = None
                if chunk is None:
                    break
                data = framing.lines.feed(chunk)
                read += await self._take(framing, data, framing.lines.take_too_long(), instance)
                if not previous and settings.settle_time > 0 and len(chunk) < _SETTLE_BELOW:
                    # The chunks sent meanwhile wait in the socket's buffer and are read at once
                    # after it: one wake-up of this task for all of them.
                    await asyncio.sleep(settings.settle_time)
                    settled = settings.settle_time
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                await asyncio.wait({pending})
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if previous:
            # A terminated instance's log is complete: its last line even without a newline,
            # and a record it ended inside.
            read += await self._take(framing, framing.lines.flush(), 0, instance)
            await self._hand_over(framing, framing.records.flush(), 0, instance)
        return read

    async def _linger(
        self,
        framing: _Framing,
        pending: asyncio.Task[bytes | None],
        instance: ContainerInstance,
        settled: float,
    ) -> None:
        """Wait up to `linger` seconds for the next chunk while lines are kept back for a stack
        that may follow them (`LineFramer.lingering`); none came: they go, no stack is coming.
        The kubelet streams the log line by line, so a line and its stack often arrive apart.

        The settle time already waited after the last chunk counts: a stack sent within it is
        in the buffer, taken at the next step of `pending`, so the linger then costs no timer
        and no wake-up of its own.
        """
        remaining = self.settings.linger - settled
        if remaining > 0:
            done, _ = await asyncio.wait({pending}, timeout=remaining)
        else:
            await asyncio.sleep(0)  # `pending` takes a chunk already buffered in its first step
            done = {pending} if pending.done() else set()
        if not done:
            await self._hand_over(framing, framing.records.release(), 0, instance)

    async def _take(
        self, framing: _Framing, data: bytes, too_long: int, instance: ContainerInstance
    ) -> int:
        """Take the timestamps off the lines of `data`, keep the new ones, frame them into
        records and hand over what is complete; the number of new lines."""
        read_at = time.monotonic()
        kept: list[bytes] = []
        skipped = 0
        for text in data.split(b"\n")[:-1]:
            line = text + b"\n"
            stamped = split_stamp(line)
            if stamped is None:
                # Not from the kubelet's reader (an error text in the stream): pass it on.
                kept.append(line)
                framing.fed += len(line)
                continue
            admit, gap = self.filter.admit(stamped)
            if gap:
                self.metrics.pod_log_gaps.labels("rotated").inc()
                log.warning("pod log: the resumed stream does not reach back to the last line")
            if not admit:
                skipped += 1
                continue
            kept.append(stamped.line)
            framing.fed += len(stamped.line)
            framing.waiting.append((framing.fed, stamped.stamp, line_key(stamped)))
        if skipped:
            self.metrics.pod_log_lines_skipped.inc(skipped)
        block = framing.records.feed(b"".join(kept)) if kept else b""
        await self._hand_over(framing, block, too_long, instance, read_at)
        return len(kept)

    async def _hand_over(
        self,
        framing: _Framing,
        block: bytes,
        too_long: int,
        instance: ContainerInstance,
        read_at: float | None = None,
    ) -> None:
        """Record the lines of `block` and queue it with the position after its last line."""
        framing.handed += len(block)
        last = 0
        waiting = framing.waiting
        while waiting and waiting[0][0] <= framing.handed:
            _, stamp, key = waiting.popleft()
            self.filter.record(stamp, key)
            last = stamp
        if not block and not too_long:
            return
        position = self.filter.position(
            self.settings.container, instance.container_id, instance.restart_count
        )
        await self.blocks.put(
            Block(
                block,
                too_long,
                time.monotonic() if read_at is None else read_at,
                pod_log=position,
                stamp_time=last / NANOSECONDS if last else None,
            )
        )

    async def _undelivered(self, framing: _Framing) -> bool | None:
        """The followed stream is silent: whether the log holds lines it did not deliver. None:
        it does not; else whether none of the lines recorded lately is in the log any more (it
        was truncated)."""
        try:
            body = b"".join(
                [
                    chunk
                    async for chunk in self._open(self.filter.since(), previous=False, follow=False)
                ]
            )
        except PodLogError as error:
            log.debug("pod log: cannot look for a stalled stream: %s", error)
            return None
        ours = {key for _, key in self.filter.recent} | {key for *_, key in framing.waiting}
        if framing.lines.partial:
            partial = split_stamp(framing.lines.partial + b"\n")
            if partial is not None:
                ours.add(line_key(partial))
        limit = self.settings.max_line_bytes + _STAMP_ROOM
        found = undelivered = False
        for text in body.split(b"\n"):
            stamped = split_stamp(text + b"\n") if len(text) < limit else None
            if stamped is None:
                continue
            if line_key(stamped) in ours:
                found = True
            else:
                undelivered = True
        if not undelivered:
            return None
        return bool(ours) and not found

    def _stalled(self, *, truncated: bool) -> None:
        """The stream stalled: it is dropped and opened again. A truncated log is counted and
        read from its start."""
        if truncated:
            self.metrics.pod_log_truncations.inc()
            log.warning(
                "pod log: truncated (the stream stalled at its old end); reading it from its start",
                extra={"source": self.name},
            )
            self.filter.restart()
        else:
            log.warning(
                "pod log: the stream stalled with lines undelivered; opening it again",
                extra={"source": self.name},
            )
