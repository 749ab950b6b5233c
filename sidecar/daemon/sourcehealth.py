"""A source that cannot be read for good, said where users look.

A sidecar refused its source (403 on `pods/log`: a chart once did not grant it) or without one
(no file matches `--file` for minutes) used to
keep `/healthz` 200, flip only `/readyz` (which no probe asked) and log a warning per retry: it
sat silently useless. Now, once a source's reads have failed without a break for
`unreadable_seconds` (60 s: longer than an apiserver's restart and its first refusals, shorter
than anyone's patience):

- `event_sidecar_source_unreadable{source, reason}` is 1 (0 again once it reads), for the
  `EventSidecarSourceUnreadable` alert;
- `/readyz` fails `sources_readable`, which the injected readiness probe asks, so `kubectl get
  pods` shows the pod not ready;
- one Warning Event `SourceUnreadable` on the sidecar's own pod (`$POD_NAME` in `$POD_NAMESPACE`),
  written like any other Event, once per condition however often the source retries, and a
  Normal `SourceReadable` once it reads again, so `kubectl describe pod` tells the whole story.

Reasons are a fixed vocabulary (`UnreadableReason`), so the label stays bounded: `forbidden` (401
or 403), `not_found` (404: the pod), `refused` (another error answer) for the pod log; `missing`
(a `--file` pattern matches nothing) and `unreadable` (it matches only files that cannot be
opened) for files. An API that does not answer at all is not the source's fault: `/readyz`'s
`api` check says that, and no Event could be written meanwhile anyway. Nor is a container
without a running instance (not started yet, or crashing: `kubectl get pods` shows that), which
also covers a `--pod-log` name the pod does not have: the pod's status names no such container,
so no log is ever asked for.

The pod log source is watched through its API (`WatchedLogAPI`, between the source and the
client) and the file source from outside (its patterns against the files it follows), so that
neither source carries this concern.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final, Literal

import orjson

from sidecar.model import ContainerInstance, EventSpec, ObjectTarget, PodLogError
from sidecar.recording.queue import Posting, QueueItem
from sidecar.runtime.metrics import Metrics
from sidecar.sources.files import FileSource
from sidecar.sources.podlog import LogAPI

log = logging.getLogger(__name__)

UnreadableReason = Literal["forbidden", "not_found", "refused", "missing", "unreadable"]
#: The Events' reasons: bounded, like every reason the sidecar writes.
UNREADABLE_EVENT: Final = "SourceUnreadable"
READABLE_EVENT: Final = "SourceReadable"
#: The `rule` of these Events in the daemon's own logs (no rule wrote them).
RULE: Final = "(source health)"
#: Seconds a pod log request may stay unanswered before it counts as an open, quiet stream: a
#: refusal comes back at once, and a request that hangs is no refusal either.
OPEN_AFTER: Final = 5.0
POD_LOG_REASONS: Final[tuple[UnreadableReason, ...]] = ("forbidden", "not_found", "refused")
FILE_REASONS: Final[tuple[UnreadableReason, ...]] = ("missing", "unreadable")
#: Characters of the API's answer kept in the Event's message (it is capped at 1 KiB).
_DETAIL: Final = 300


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a source cannot be read right now."""

    reason: UnreadableReason
    detail: str


@dataclass(frozen=True, slots=True)
class Change:
    """The condition began (`failure` set: it has lasted `lasted` seconds) or ended (None)."""

    failure: Failure | None
    lasted: float = 0.0


class Condition:
    """Whether one source has failed without a break for `after` seconds (pure: the caller
    samples and passes the time); reports each beginning and end once."""

    def __init__(self, after: float) -> None:
        self.after = after
        self._since: float | None = None
        #: The failure reported, while the condition holds.
        self.reported: Failure | None = None

    def observe(self, failure: Failure | None, now: float) -> Change | None:
        """The change, if any, that `failure` (None: the source reads) at `now` makes."""
        if failure is None:
            self._since = None
            if self.reported is None:
                return None
            self.reported = None
            return Change(None)
        if self._since is None:
            self._since = now
        if self.reported is None and now - self._since >= self.after:
            self.reported = failure
            return Change(failure, now - self._since)
        return None


def pod_log_failure(error: PodLogError) -> Failure | None:
    """What a pod log API error says about the source; None when the API did not answer."""
    if error.status == 0:
        return None
    reason: UnreadableReason
    if error.status in (401, 403):
        reason = "forbidden"
    elif error.status == 404:
        reason = "not_found"
    else:
        reason = "refused"
    return Failure(reason, f"{error.status}: {_status_message(str(error))}"[:_DETAIL])


def _status_message(text: str) -> str:
    """The `message` of the API's `Status` answer (what kubectl prints), else the answer."""
    body = text.partition(": ")[2] or text
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:  # cut at 500 characters, or not JSON: as it is
        return body
    message = document.get("message") if isinstance(document, dict) else None
    return message if isinstance(message, str) and message else body


class WatchedLogAPI:
    """The pod log API as the source uses it, noting whether its requests are refused.

    A refusal stands until something else is seen: a chunk of log, a stream that ends by itself,
    a container with no instance yet, an API that does not answer, or a request unanswered for
    `OPEN_AFTER` seconds (an open stream of a quiet container sends nothing at all).
    """

    def __init__(self, api: LogAPI, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._clock = clock
        self._failure: Failure | None = None
        #: When the request still unanswered was made, if any.
        self._asked_at: float | None = None

    def failure(self) -> Failure | None:
        """The refusal that stands now, if any."""
        if self._asked_at is not None and self._clock() - self._asked_at >= OPEN_AFTER:
            self._failure = None
        return self._failure

    async def instance(self, namespace: str, pod: str, container: str) -> ContainerInstance | None:
        try:
            found = await self._api.instance(namespace, pod, container)
        except PodLogError as error:
            self._failure = pod_log_failure(error)
            raise
        if found is None:
            self._failure = None
        return found

    async def stream(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        since: str | None,
        previous: bool = False,
        follow: bool = True,
    ) -> AsyncIterator[bytes]:
        chunks = self._api.stream(
            namespace, pod, container, since=since, previous=previous, follow=follow
        )
        self._asked_at = self._clock()
        try:
            async for chunk in chunks:
                self._asked_at = None
                self._failure = None
                yield chunk
        except PodLogError as error:
            # A previous instance's log may be gone for good (counted as a gap): that says
            # nothing about the current one.
            if not previous:
                self._failure = pod_log_failure(error)
            raise
        else:
            self._failure = None
        finally:
            self._asked_at = None


def file_failure(patterns: tuple[str, ...], source: FileSource) -> Failure | None:
    """Why the file source reads none of a pattern's files, for the first pattern it cannot."""
    followed = {(position.device, position.inode) for position in source.followed}
    for pattern in patterns:
        # glob.glob rather than Path.glob: the patterns are absolute, as the source's are.
        paths = glob.glob(pattern) if glob.has_magic(pattern) else [pattern]  # noqa: PTH207
        found: list[str] = []
        for path in paths:
            try:
                info = os.stat(path)  # noqa: PTH116
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in followed:
                found = []
                break
            found.append(path)
        else:
            if not found:
                return Failure("missing", f"no file matches {pattern}")
            return Failure("unreadable", _why_unreadable(found[0]))
    return None


def _why_unreadable(path: str) -> str:
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as error:
        return f"cannot open {path}: {error.strerror}"
    return f"{path} is not read yet"


class SourceWatch:
    """Samples each source's condition and says when one becomes unreadable or reads again."""

    def __init__(
        self,
        metrics: Metrics,
        events: asyncio.Queue[QueueItem],
        *,
        after: float,
        pod: str,
        namespace: str,
        stopping: Callable[[], bool] = bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        #: True once the daemon stops: its sources stop reading then, which is no failure.
        self._stopping = stopping
        self.events = events
        self.after = after
        self.pod = pod
        self.namespace = namespace
        self._clock = clock
        #: Each watched source: its name, what says why it fails now, and its condition.
        self._sources: list[tuple[str, Callable[[], Failure | None], Condition]] = []

    def watch(
        self,
        source: str,
        failure: Callable[[], Failure | None],
        reasons: tuple[UnreadableReason, ...],
    ) -> None:
        """Follow `source` (its metric label), whose current failure `failure` says, with the
        `reasons` it can fail for (their series start at 0: dashboards see zeros, not gaps)."""
        for reason in reasons:
            self.metrics.source_unreadable.labels(source, reason).set(0)
        self._sources.append((source, failure, Condition(self.after)))

    @property
    def watched(self) -> bool:
        """Whether any source is watched (sockets are not: they listen, and cannot fail so)."""
        return bool(self._sources)

    @property
    def readable(self) -> bool:
        """No source has been unreadable for `after` seconds (`/readyz`'s `sources_readable`)."""
        return all(condition.reported is None for _, _, condition in self._sources)

    @property
    def interval(self) -> float:
        """Seconds between samples: a fraction of `after`, within 0.1 and 5 s."""
        return max(0.1, min(5.0, self.after / 4))

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            if not self._stopping():
                await self.check()
            await asyncio.sleep(self.interval)

    async def check(self) -> None:
        """Sample every source once; report what changed."""
        now = self._clock()
        for source, failure, condition in self._sources:
            before = condition.reported
            change = condition.observe(failure(), now)
            if change is not None:
                await self._report(source, change, before)

    async def _report(self, source: str, change: Change, before: Failure | None) -> None:
        gauge = self.metrics.source_unreadable
        failure = change.failure
        if failure is not None:
            gauge.labels(source, failure.reason).set(1)
            log.warning(
                "source %s unreadable for %.0f s: %s",
                source,
                change.lasted,
                failure.detail,
                extra={"source": source, "reason": failure.reason},
            )
            message = (
                f"event-sidecar cannot read its source {source} ({failure.reason}): "
                f"{failure.detail}. No Events come from it until it can."
            )
            await self._post("Warning", UNREADABLE_EVENT, message)
            return
        assert before is not None
        gauge.labels(source, before.reason).set(0)
        log.info("source %s readable again", source, extra={"source": source})
        await self._post(
            "Normal", READABLE_EVENT, f"event-sidecar reads its source {source} again."
        )

    async def _post(self, type_: str, reason: str, message: str) -> None:
        """An Event on the sidecar's own pod, through the Event queue like any other."""
        if not (self.pod and self.namespace):
            return  # not in a pod ($POD_NAME, $POD_NAMESPACE unset): the metric and log say it
        target = ObjectTarget(kind="Pod", name=self.pod, namespace=self.namespace, api_version="v1")
        spec = EventSpec(RULE, target, type_, reason, message, time.time())
        await self.events.put(Posting(spec, time.monotonic()))
