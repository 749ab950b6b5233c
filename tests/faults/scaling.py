"""A bound on work without a bound on wall time: how the cost grows from n to 16n.

Linear code costs about 16 times as much on an input 16 times as long; quadratic code 256 times.
The CPU time of this process is measured (not wall time, which other processes stretch), the best
of several runs is taken, and the factor allowed (64) is generous on the linear side and far below
the quadratic one. The garbage
collector is off while measuring: its passes cost in proportion to the whole heap, not the input.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

GROWTH = 16
#: Allowed cost ratio for an input GROWTH times longer: linear is 16, quadratic 256.
MAX_RATIO = 64.0
#: Seconds the small input's run is made to last at least (by repeating the call), so that timer
#: resolution and call overhead do not dominate it.
_MIN_RUN = 0.005


def _best_time(function: Callable[[], object], *, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        function()
        best = min(best, time.process_time() - start)
    return best


def cost_ratio(function: Callable[[int], object], n: int) -> float:
    """Cost of `function(GROWTH * n)` over the cost of `function(n)`, each the best of a few."""
    calls = 1
    gc.disable()
    try:
        while _best_time(_repeat(function, n, calls), repeats=1) < _MIN_RUN:
            calls *= 2
        small = _best_time(_repeat(function, n, calls))
        large = _best_time(_repeat(function, GROWTH * n, calls))
    finally:
        gc.enable()
    return large / small


def _repeat(function: Callable[[int], object], size: int, calls: int) -> Callable[[], object]:
    return lambda: [function(size) for _ in range(calls)]
