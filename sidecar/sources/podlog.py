"""The pod log source: a sibling container's stdout/stderr through the pod log API.

For the controller that writes only to stdout (zap's default, a distroless image): nothing about
it has to change. The stream is the one `kubectl logs -f --timestamps` reads; every line carries
the kubelet's timestamp, which is what makes resuming exact (see `sidecar.stamps`).

The loop, until cancelled:

1. Read the pod's status for the container's current instance (id and restart count).
2. Same instance as the position: follow from the position's second (`sinceTime`), skipping
   what was processed. Another instance, one restart later: first read the previous instance's
   tail (`previous=true`) from the position, then follow the new one from its start. More than
   one restart later: the instances in between were never read; each is counted as a gap.
3. The stream ended (container exit, apiserver or network failure): wait (backoff, reset by any
   line read) and start again at 1.

Every gap that cannot be closed is counted in `event_sidecar_pod_log_gaps{reason}`:
`instance_missed` (a whole instance came and went unread), `previous_unavailable` (the previous
instance's log is gone), `rotated` (a resumed stream does not reach back to the last line read:
the kubelet rotated it away).

Backpressure: like the file source, it waits for room in the block queue; meanwhile the stream is
not read and the apiserver's and kubelet's buffers fill (HTTP flow control); what does not fit is
read again after a reconnect from the last recorded position.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Protocol

from sidecar.metrics import Metrics
from sidecar.model import ContainerInstance, PodLogError, PodLogPosition
from sidecar.scan import LineFramer
from sidecar.settings import PodLogSettings
from sidecar.sources import Block
from sidecar.stamps import NANOSECONDS, ResumeFilter, format_since, split_stamp

log = logging.getLogger(__name__)

#: Room for the kubelet's timestamp prefix on top of the controller's longest line.
_STAMP_ROOM = 64
GAP_REASONS = ("instance_missed", "previous_unavailable", "rotated")


class LogAPI(Protocol):
    """What the source needs from the Kubernetes edge (`sidecar.kube.logs.PodLogClient`)."""

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
        if known is None:
            # First start without a position: the instance's whole log is news.
            since = None
        elif current.container_id == known.container_id:
            since = format_since(self.filter.stamp) if self.filter.stamp else None
            self.filter.reconnect()
        else:
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
            since = None
        self.instance = current
        read += await self._read(since, previous=False)
        return read

    async def _read_previous(self) -> int:
        """The tail of the instance the position is in, now the previous one."""
        since = format_since(self.filter.stamp) if self.filter.stamp else None
        self.filter.reconnect()
        try:
            return await self._read(since, previous=True)
        except PodLogError as error:
            if error.status == 0:
                raise
            self.metrics.pod_log_gaps.labels("previous_unavailable").inc()
            log.warning("pod log: previous instance unreadable: %s", error)
            return 0

    async def _read(self, since: str | None, *, previous: bool) -> int:
        """Stream, frame, de-duplicate and queue; the number of new lines."""
        settings = self.settings
        framer = LineFramer(settings.max_line_bytes + _STAMP_ROOM)
        instance = self.instance
        assert instance is not None
        read = 0
        chunks = self.api.stream(
            settings.namespace,
            settings.pod,
            settings.container,
            since=since,
            previous=previous,
            follow=not previous,
        )
        self.ready = not previous
        async for chunk in chunks:
            dropped = framer.too_long
            data = framer.feed(chunk)
            too_long = framer.too_long - dropped
            if data or too_long:
                read += await self._queue(data, too_long, instance)
        tail = framer.flush()
        if tail and previous:
            # A terminated instance's last line is complete even without a newline.
            read += await self._queue(tail, 0, instance)
        return read

    async def _queue(self, data: bytes, too_long: int, instance: ContainerInstance) -> int:
        """Keep the new lines of `data`; hand them over with the position after them."""
        read_at = time.monotonic()
        kept: list[bytes] = []
        last_stamp = 0
        for line in data.splitlines(keepends=True):
            stamped = split_stamp(line)
            if stamped is None:
                # Not from the kubelet's reader (an error text in the stream): pass it on.
                kept.append(line)
                continue
            admit, gap = self.filter.admit(stamped)
            if gap:
                self.metrics.pod_log_gaps.labels("rotated").inc()
                log.warning("pod log: the resumed stream does not reach back to the last line")
            if admit:
                kept.append(stamped.line)
                last_stamp = stamped.stamp
        if not kept and not too_long:
            return 0
        position = self.filter.position(
            self.settings.container, instance.container_id, instance.restart_count
        )
        await self.blocks.put(
            Block(
                b"".join(kept),
                too_long,
                read_at,
                pod_log=position,
                stamp_time=last_stamp / NANOSECONDS if last_stamp else None,
            )
        )
        return len(kept)
