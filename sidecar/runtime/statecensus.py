"""`objects_in_state` and `state_oldest_seconds`: the per-state gauges, counted from the
transition tracker at scrape time, on the thread that owns it (`StateCensus`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sidecar.core.labels import LabelGuard
from sidecar.core.transitions import TransitionTracker

_T = TypeVar("_T")


class OnOwner(Protocol):
    """Runs a call on the thread that owns some state and returns its result, or None when that
    thread does not answer in time (`StatusServer.on_loop` for the daemon's event loop)."""

    def __call__(self, call: Callable[[], _T]) -> _T | None: ...


def _here(call: Callable[[], _T]) -> _T | None:
    """The state is owned by the caller's thread (`replay`, `explain`, tests): call it."""
    return call()


#: One row of the per-state gauges: (rule, state) labels, objects, seconds the oldest stayed.
_StateRow = tuple[tuple[str, str], int, float | None]


class StateCensus(Collector):
    """`objects_in_state` and `state_oldest_seconds`, counted from the tracker at scrape time.

    A scrape walks the tracker once (O(objects), every scrape interval) instead of every line
    paying for gauge updates. Objects whose last line is older than the TTL are left out.

    The tracker belongs to the thread that feeds it lines (the daemon's event loop), and a scrape
    arrives on another (the status server's): walking the tracker's dict there while the loop
    changes it failed the scrape ("dictionary changed size during iteration"), so the walk runs
    through `owner`, on the tracker's own thread, and the scrape renders the rows it returns.
    Counted there, every row is one consistent moment of the tracker, and the loop is held for
    the walk only, never for the rendering. When the owner does not answer in time (a wedged
    loop, which fails `/healthz` too), the two families are exposed empty: no count rather than
    a stale one.
    """

    @classmethod
    def on(cls, registry: CollectorRegistry, guard: LabelGuard) -> StateCensus:
        """A collector on `registry` with the state labels' `guard`."""
        collector = cls(guard)
        registry.register(collector)
        return collector

    def __init__(self, guard: LabelGuard) -> None:
        self.guard = guard
        self.tracker: TransitionTracker | None = None
        self.clock: Callable[[], float] = lambda: 0.0
        self.ttl = 0.0
        self.owner: OnOwner = _here

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_state = GaugeMetricFamily(
            "event_sidecar_objects_in_state",
            "Objects currently in each state, by rule (its tracker's name when rules share one) "
            "and state; objects without a line for the state TTL are left out.",
            labels=["rule", "state"],
        )
        oldest = GaugeMetricFamily(
            "event_sidecar_state_oldest_seconds",
            "Seconds the earliest object to enter each state, still in it, has been there (from "
            "the lines' times), by rule and state: what a 'stuck in a state' alert watches.",
            labels=["rule", "state"],
        )
        rows = self.owner(self.rows) if self.tracker is not None else None
        for label, objects, stayed in rows or ():
            in_state.add_metric(label, objects)
            if stayed is not None:
                oldest.add_metric(label, stayed)
        yield in_state
        yield oldest

    def rows(self) -> list[_StateRow]:
        """The census, its states through the guard (on the tracker's thread, as the histogram's
        are), sorted by label."""
        if self.tracker is None:
            return []
        now = self.clock()
        merged: dict[tuple[str, str], tuple[int, float | None]] = {}
        for (rule, state), count in self.tracker.census(now - self.ttl).items():
            label = (rule, self.guard.admit(rule, state))
            objects, since = merged.get(label, (0, None))
            if count.oldest_since is not None and (since is None or count.oldest_since < since):
                since = count.oldest_since
            merged[label] = (objects + count.objects, since)
        return [
            (label, objects, None if since is None else max(0.0, now - since))
            for label, (objects, since) in sorted(merged.items())
        ]
