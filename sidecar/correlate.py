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

The clock is the Event's own time (`lastTimestamp`, which the Recorder takes from the line), not
the wall clock, in `run` as in `replay`. So a backlog read after downtime is correlated as it
would have been live (an hour of lines is not one burst for the spam filter or the aggregation
window), and lines read again after a crash get the same decisions they got the first time,
which is what lets a restart continue the same Events (see `export` and `restore`).
"""

from __future__ import annotations

import hashlib
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


@dataclass(frozen=True, slots=True)
class CorrelationState:
    """What the correlator remembers, in a form a checkpoint can carry across a restart.

    Keys and messages appear as `digest`s: stable across processes (Python's `hash` of a string
    is not) and short whatever the messages' length, so a full state stays about a megabyte.
    """

    #: (dedup or aggregation key digest, Event name, count, firstTimestamp), oldest first.
    observed: tuple[tuple[str, str, int, float], ...] = ()
    #: (aggregation key digest, last seen, digests of its distinct messages, oldest first).
    similar: tuple[tuple[str, float, tuple[str, ...]], ...] = ()


def digest(*parts: str) -> str:
    """A stable 64-bit digest of `parts`, as 16 hex digits (collisions are negligible for the
    few thousand keys the caches hold)."""
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=8).hexdigest()


@dataclass(slots=True)
class _Similar:
    digest: str
    #: Distinct messages, oldest first, with their digests; a dict so that "pop any" is
    #: deterministic (the oldest).
    messages: dict[str, str] = field(default_factory=dict)
    last_seen: float = 0.0
    #: Digests of distinct messages seen before a restart (older than any in `messages`).
    restored: dict[str, None] = field(default_factory=dict)

    def distinct(self) -> int:
        return len(self.messages) + len(self.restored)

    def forget_oldest(self) -> None:
        if self.restored:
            del self.restored[next(iter(self.restored))]
        else:
            del self.messages[next(iter(self.messages))]


@dataclass(frozen=True, slots=True)
class _Observation:
    count: int
    first_timestamp: float
    name: str
    #: `digest` of the key it is stored under, for `export`.
    digest: str


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
    """client-go's three caches; its clock is each Event's `last_timestamp` (see the module)."""

    def __init__(self, settings: CorrelatorSettings, namer: EventNamer) -> None:
        self.settings = settings
        self._namer = namer
        self._similar: LRU[tuple[str, ...], _Similar] = LRU(settings.cache_size)
        self._observed: LRU[tuple[str, ...], _Observation] = LRU(settings.cache_size)
        self._buckets: LRU[tuple[str, ...], _TokenBucket] = LRU(settings.cache_size)
        #: Restored entries by key digest, taken over when their key is next seen.
        self._restored_similar: dict[str, _Similar] = {}
        self._restored_observed: dict[str, _Observation] = {}

    def export(self) -> CorrelationState:
        """The dedup and aggregation state (not the spam filter's buckets: a restart that
        starts them full can only let more through, and counts stay right either way)."""
        limit = self.settings.cache_size
        observed = [*self._restored_observed.values()]
        observed.extend(value for _, value in self._observed.items())
        similar = [*self._restored_similar.values()]
        similar.extend(value for _, value in self._similar.items())
        return CorrelationState(
            observed=tuple(
                (o.digest, o.name, o.count, o.first_timestamp) for o in observed[-limit:]
            ),
            similar=tuple(
                (s.digest, s.last_seen, (*s.restored, *s.messages.values()))
                for s in similar[-limit:]
            ),
        )

    def restore(self, state: CorrelationState) -> None:
        """Load what `export` saved, so that a repeat of an Event from before a restart PATCHes
        that Event to the next count instead of starting a new one."""
        limit = self.settings.cache_size
        for key, name, count, first in state.observed[-limit:]:
            self._restored_observed[key] = _Observation(count, first, name, key)
        for key, last_seen, messages in state.similar[-limit:]:
            self._restored_similar[key] = _Similar(
                key, last_seen=last_seen, restored=dict.fromkeys(messages)
            )

    def correlate(self, event: Event) -> Decision:
        """What to do with `event`: create, PATCH an earlier Event, or suppress it."""
        now = event.last_timestamp
        event, key, aggregated = self._aggregate(event, now)
        event, patch = self._observe(event, key)
        if not self._admit(event, now):
            return Suppressed(event)
        return Write(event, patch, aggregated)

    def _aggregate(self, event: Event, now: float) -> tuple[Event, tuple[str, ...], bool]:
        involved = event.involved
        similar_key = (*_source_object_type(event), event.reason)
        record = self._similar.get(similar_key)
        if record is None and self._restored_similar:
            record = self._restored_similar.pop(digest(*similar_key), None)
        if record is None or now - record.last_seen > self.settings.similar_window_seconds:
            record = _Similar(record.digest if record else digest(*similar_key))
        message = event.message
        if message not in record.messages:
            message_digest = digest(message)
            if record.restored:
                record.restored.pop(message_digest, None)
            record.messages[message] = message_digest
        record.last_seen = now
        self._similar.put(similar_key, record)
        if record.distinct() < self.settings.max_similar_events:
            exact_key = (*similar_key[:5], involved.field_path, *similar_key[5:], message)
            return event, exact_key, False
        record.forget_oldest()
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
        if previous is None:
            key_digest = digest(*key)
            if self._restored_observed:
                previous = self._restored_observed.pop(key_digest, None)
        else:
            key_digest = previous.digest
        if previous is not None:
            event = event.repeated(
                count=previous.count + 1,
                first_timestamp=previous.first_timestamp,
                name=previous.name,
            )
            patch = event.repeat_patch()
        self._observed.put(
            key, _Observation(event.count, event.first_timestamp, event.name, key_digest)
        )
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
