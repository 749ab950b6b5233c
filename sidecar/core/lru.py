"""The one least-recently-used map: the correlator's caches and the transition state.

Written here rather than taken from cachetools because it sits on the per-Event path: cachetools'
LRUCache spends several Python calls per access on size accounting this code never needs, and a
plain dict (insertion-ordered, re-inserted on use) does the job in two C operations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A map of at most `maxsize` items that forgets the least recently used."""

    __slots__ = ("data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("an LRU needs room for at least one item")
        self.maxsize = maxsize
        #: The items, least recently used first. Open for the correlator, which does `get` and
        #: `put` inline (pop and re-insert, insert and trim) for several caches per Event, where
        #: a method call costs as much as the dict operations it wraps.
        self.data: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: K) -> bool:
        return key in self.data

    def peek(self, key: K) -> V | None:
        """The value, leaving its recency alone; None when absent."""
        return self.data.get(key)

    def items(self) -> Iterator[tuple[K, V]]:
        """Every item, least recently used first."""
        return iter(self.data.items())

    def get(self, key: K) -> V | None:
        """The value, now the most recently used; None when absent."""
        items = self.data
        value = items.pop(key, None)
        if value is not None:
            items[key] = value
        return value

    def pop(self, key: K) -> V | None:
        """Forget `key`; its value, or None when absent."""
        return self.data.pop(key, None)

    def put(self, key: K, value: V) -> bool:
        """Store as the most recently used, forgetting the least recently used when full;
        True when an item was forgotten (for callers that count evictions)."""
        items = self.data
        items.pop(key, None)
        items[key] = value
        if len(items) > self.maxsize:
            del items[next(iter(items))]
            return True
        return False
