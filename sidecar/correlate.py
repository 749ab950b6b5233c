"""Event correlation with client-go's numbers (`tools/record/events_cache.go`), clock injected.

In client-go's order, each new Event passes:
1. the aggregator: the 10th distinct message for one (source, object, type, reason) within a
   sliding 600 s window turns the Event into `(combined from similar events): <message>`, and
   later similar ones update that single Event;
2. the logger (dedup): an Event equal to an earlier one (same object, type, reason, message)
   becomes a strategic-merge PATCH of count, lastTimestamp and message on the earlier Event;
3. the spam filter: a token bucket per (source, object, type), burst 25, refilled 1 per 300 s.
   The dedup count is raised before the filter, so suppressed repeats still raise the next count.

Where client-go drops silently, `correlate` says so: the caller counts every `Suppressed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sidecar.events import Event, EventNamer, truncate_message
from sidecar.lru import LRU
from sidecar.model import DropCause

AGGREGATE_PREFIX = "(combined from similar events): "


@dataclass(frozen=True, slots=True)
class CorrelatorSettings:
    #: client-go's `maxEvents`: distinct messages per similar-key before aggregating.
    max_similar_events: int = 10
    #: client-go's `maxIntervalInSeconds`: the sliding window of the aggregator.
    similar_window_seconds: float = 600.0
    #: client-go's default burst: Events one object may get at once before the filter bites.
    spam_burst: int = 25
    #: client-go refills one token per 300 s (qps 1/300).
    spam_refill_seconds: float = 300.0
    #: client-go's key leaves the reason out, so one noisy reason silences the others on the
    #: same object; set this to give each reason its own bucket.
    spam_key_by_reason: bool = False
    #: client-go's LRU size for each of the three caches.
    cache_size: int = 4096


@dataclass(frozen=True, slots=True)
class Write:
    """Write `event`: create it, or when `patch` is set PATCH it (re-create on 404)."""

    event: Event
    patch: dict[str, Any] | None = None
    aggregated: bool = False


@dataclass(frozen=True, slots=True)
class Suppressed:
    event: Event
    cause: DropCause = "spam_filter"


Decision = Write | Suppressed


@dataclass(slots=True)
class _Similar:
    #: Distinct messages, oldest first; a dict so that "pop any" is deterministic (the oldest).
    messages: dict[str, None] = field(default_factory=dict)
    last_seen: float = 0.0


@dataclass(frozen=True, slots=True)
class _Observation:
    count: int
    first_timestamp: float
    name: str


class _TokenBucket:
    """golang.org/x/time/rate's passive limiter: starts full, refills continuously."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def try_accept(self, now: float) -> bool:
        elapsed = max(0.0, now - self._stamp)
        self._stamp = max(self._stamp, now)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Correlator:
    def __init__(
        self,
        settings: CorrelatorSettings,
        clock: Callable[[], float],
        namer: EventNamer,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._namer = namer
        self._similar: LRU[tuple[str, ...], _Similar] = LRU(settings.cache_size)
        self._observed: LRU[tuple[str, ...], _Observation] = LRU(settings.cache_size)
        self._buckets: LRU[tuple[str, ...], _TokenBucket] = LRU(settings.cache_size)

    def correlate(self, event: Event) -> Decision:
        now = self._clock()
        event, key, aggregated = self._aggregate(event, now)
        event, patch = self._observe(event, key)
        if not self._admit(event, now):
            return Suppressed(event)
        return Write(event, patch, aggregated)

    def _aggregate(self, event: Event, now: float) -> tuple[Event, tuple[str, ...], bool]:
        involved = event.involved
        similar_key = (*_source_object_type(event), event.reason)
        record = self._similar.get(similar_key)
        if record is None or now - record.last_seen > self.settings.similar_window_seconds:
            record = _Similar()
        record.messages[event.message] = None
        record.last_seen = now
        self._similar.put(similar_key, record)
        if len(record.messages) < self.settings.max_similar_events:
            exact_key = (*similar_key[:5], involved.field_path, *similar_key[5:], event.message)
            return event, exact_key, False
        del record.messages[next(iter(record.messages))]
        combined = replace(
            event,
            name=self._namer(involved.name),
            message=truncate_message(AGGREGATE_PREFIX + event.message),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        return combined, similar_key, True

    def _observe(self, event: Event, key: tuple[str, ...]) -> tuple[Event, dict[str, Any] | None]:
        previous = self._observed.get(key)
        patch = None
        if previous is not None:
            event = event.repeated(
                count=previous.count + 1,
                first_timestamp=previous.first_timestamp,
                name=previous.name,
            )
            patch = event.repeat_patch()
        self._observed.put(key, _Observation(event.count, event.first_timestamp, event.name))
        return event, patch

    def _admit(self, event: Event, now: float) -> bool:
        spam_key = _source_object_type(event)
        if self.settings.spam_key_by_reason:
            spam_key = (*spam_key, event.reason)
        bucket = self._buckets.get(spam_key)
        if bucket is None:
            bucket = _TokenBucket(
                1.0 / self.settings.spam_refill_seconds, self.settings.spam_burst, now
            )
        admitted = bucket.try_accept(now)
        self._buckets.put(spam_key, bucket)
        return admitted


def _source_object_type(event: Event) -> tuple[str, ...]:
    """client-go's spam key: source, involved object (without fieldPath) and type. The
    aggregation key adds the reason; the dedup key adds fieldPath, reason and message."""
    involved = event.involved
    return (
        event.component,
        event.host,
        involved.kind,
        involved.namespace,
        involved.name,
        involved.uid,
        involved.api_version,
        event.type,
    )
