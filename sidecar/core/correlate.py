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
from dataclasses import dataclass, field
from typing import Any

from sidecar.core.events.corev1 import Event, EventNamer, InvolvedObject, truncate_message
from sidecar.core.lru import LRU
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


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it.
@dataclass(slots=True)
class Write:
    """Write `event`: create it, or when `patch` is set PATCH it (re-create on 404)."""

    event: Event
    patch: dict[str, Any] | None = None
    aggregated: bool = False


# Not frozen: built per line (or per Event), where a frozen dataclass costs several times more
# (its __init__ goes through object.__setattr__). Immutable by convention: nothing assigns to it.
@dataclass(slots=True)
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
    #: `digest` of the aggregation key; None until `export` needs it.
    digest: str | None
    #: Distinct messages, oldest first, with their digests (None until `export` needs them); a
    #: dict so that "pop any" is deterministic (the oldest).
    messages: dict[str, str | None] = field(default_factory=dict)
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


@dataclass(slots=True)
class _Observation:
    """The Event one dedup (or aggregation) key has been written as. Mutable: a repeat raises
    `count` in place, one attribute store instead of a new object per Event."""

    count: int
    first_timestamp: float
    name: str
    #: `digest` of the key it is stored under; None until `export` needs it.
    digest: str | None


class _TokenBucket:
    """golang.org/x/time/rate's passive limiter: starts full, refills continuously."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def try_accept(self, now: float) -> bool:
        # The same arithmetic as with max and min (a clock going back adds nothing), in
        # comparisons: this runs for every Event.
        tokens = self._tokens
        stamp = self._stamp
        if now > stamp:
            tokens += (now - stamp) * self._rate
            self._stamp = now
        tokens = min(tokens, self._burst)
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
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
        starts them full can only let more through, and counts stay right either way).

        Digests are computed here, not per Event: most keys and messages are never exported
        (they leave the caches first), and a checkpoint is rare next to Events.
        """
        limit = self.settings.cache_size
        for key, observation in self._observed.items():
            if observation.digest is None:
                observation.digest = digest(*key)
        for key, record in self._similar.items():
            if record.digest is None:
                record.digest = digest(*key)
            messages = record.messages
            for message, message_digest in messages.items():
                if message_digest is None:
                    messages[message] = digest(message)
        observed = [*self._restored_observed.values()]
        observed.extend(value for _, value in self._observed.items())
        similar = [*self._restored_similar.values()]
        similar.extend(value for _, value in self._similar.items())
        return CorrelationState(
            observed=tuple(
                (o.digest or "", o.name, o.count, o.first_timestamp) for o in observed[-limit:]
            ),
            similar=tuple(
                (
                    s.digest or "",
                    s.last_seen,
                    (*s.restored, *(d or "" for d in s.messages.values())),
                )
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
        """What to do with `event`: create, PATCH an earlier Event, or suppress it.

        `event` may come unnamed (`name` empty): it is named here, by the namer, only when it
        starts a new Event, which is what client-go's name stands for (a repeat keeps the name
        of the Event it repeats). See `decide`, which this is with the Event's parts.
        """
        decision = self.decide(
            event.component,
            event.host,
            event.involved,
            event.type,
            event.reason,
            event.message,
            event.last_timestamp,
            event.namespace,
            event.name,
            event,
        )
        return Suppressed(event) if decision is None else decision

    def decide(  # noqa: PLR0917 - positional: this runs for every Event (see the docstring)
        self,
        component: str,
        host: str,
        involved: InvolvedObject,
        type: str,
        reason: str,
        message: str,
        now: float,
        namespace: str,
        name: str = "",
        event: Event | None = None,
    ) -> Write | None:
        """`correlate` on the parts of a new Event (count 1, first and last timestamp `now`,
        `message` already truncated), without the Event: None when the spam filter drops it.

        The three caches are updated first, in client-go's order and with its numbers; only an
        Event that passes the spam filter is then built (its new, aggregated or repeated form,
        and the PATCH body). Under a flood most are dropped, and nothing is built for them:
        the Recorder decides from the rule's output before making any Event. `event`, when
        given, is that Event already made: a new one is written as it is.

        The keys are flat tuples of the parts, made once each from local names (the dedup key's
        order is the one `export` digests, which a checkpoint carries), and the caches' dicts
        are used inline: per Event this is the hot path of a flapping log.
        """
        kind = involved.kind
        object_namespace = involved.namespace
        object_name = involved.name
        uid = involved.uid
        api_version = involved.api_version
        settings = self.settings
        window = settings.similar_window_seconds
        # 1. The aggregator, keyed by source, object (without fieldPath), type and reason.
        similar_key = (
            component,
            host,
            kind,
            object_namespace,
            object_name,
            uid,
            api_version,
            type,
            reason,
        )
        similar_cache = self._similar
        similars = similar_cache.data
        similar = similars.pop(similar_key, None)
        if similar is None:
            if self._restored_similar:
                similar = self._restored_similar.pop(digest(*similar_key), None)
            if similar is None or now - similar.last_seen > window:
                similar = _Similar(similar.digest if similar else None)
            similars[similar_key] = similar
            if len(similars) > similar_cache.maxsize:
                del similars[next(iter(similars))]
        else:
            if now - similar.last_seen > window:
                similar = _Similar(similar.digest)
            similars[similar_key] = similar
        messages = similar.messages
        if message not in messages:
            if similar.restored:
                similar.restored.pop(digest(message), None)
            messages[message] = None
        similar.last_seen = now
        aggregated = len(messages) + len(similar.restored) >= settings.max_similar_events
        key: tuple[str, ...]
        if aggregated:
            similar.forget_oldest()
            key = similar_key
        else:
            key = (
                component,
                host,
                kind,
                object_namespace,
                object_name,
                involved.field_path,
                uid,
                api_version,
                type,
                reason,
                message,
            )
        # 2. The logger (dedup): raise the count, before the filter.
        # An unnamed Event draws its name (and an aggregated one another, as client-go makes
        # a new Event for it); the names not used are skipped, so later ones stay the same.
        draws = (0 if name else 1) + aggregated
        new = False
        observed_cache = self._observed
        observations = observed_cache.data
        observed = observations.pop(key, None)
        if observed is None:
            if self._restored_observed:
                observed = self._restored_observed.pop(digest(*key), None)
            if observed is not None:
                observed.count += 1
            else:
                new = True
                namer = self._namer
                if draws:
                    namer.skip(draws - 1)
                    draws = 0
                    observed = _Observation(1, now, namer(object_name), None)
                else:
                    observed = _Observation(1, now, name, None)
            observations[key] = observed
            if len(observations) > observed_cache.maxsize:
                del observations[next(iter(observations))]
        else:
            observations[key] = observed
            observed.count += 1
        if draws:
            self._namer.skip(draws)
        # 3. The spam filter, keyed by source, object (without fieldPath) and type.
        spam_key = similar_key if settings.spam_key_by_reason else similar_key[:8]
        bucket_cache = self._buckets
        buckets = bucket_cache.data
        bucket = buckets.pop(spam_key, None)
        if bucket is None:
            bucket = _TokenBucket(1.0 / settings.spam_refill_seconds, settings.spam_burst, now)
            buckets[spam_key] = bucket
            if len(buckets) > bucket_cache.maxsize:
                del buckets[next(iter(buckets))]
        else:
            buckets[spam_key] = bucket
        if not bucket.try_accept(now):
            return None
        # Only now is the Event written built.
        if new and not aggregated:
            if event is not None:
                return Write(event if event.name == observed.name else event.named(observed.name))
            return Write(
                Event(
                    observed.name,
                    namespace,
                    involved,
                    type,
                    reason,
                    message,
                    now,
                    now,
                    1,
                    component,
                    host,
                )
            )
        if aggregated:
            message = truncate_message(AGGREGATE_PREFIX + message)
        written = Event(
            observed.name,
            namespace,
            involved,
            type,
            reason,
            message,
            observed.first_timestamp,
            now,
            observed.count,
            component,
            host,
        )
        return Write(written, None if new else written.repeat_patch(), aggregated)
