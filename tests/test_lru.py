"""The LRU map: bounded, forgets the least recently used."""

from __future__ import annotations

import pytest

from sidecar.core.lru import LRU


def test_get_refreshes_peek_does_not() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.peek("a") == 1  # "a" stays the oldest
    lru.put("c", 3)
    assert "a" not in lru
    assert lru.get("b") == 2  # "b" is now the newest
    lru.put("d", 4)
    assert list(lru.items()) == [("b", 2), ("d", 4)]


def test_replacing_a_key_evicts_nothing() -> None:
    lru: LRU[str, int] = LRU(1)
    lru.put("a", 1)
    lru.put("a", 2)
    assert (list(lru.items()), len(lru)) == ([("a", 2)], 1)


def test_an_empty_lru_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        LRU(0)
