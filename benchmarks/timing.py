"""Timing helper shared by the benchmark scripts: the best of several runs, as a competent engineer times."""

from __future__ import annotations

import time
from typing import Callable


def best_ms(fn: Callable[[], object], repeat: int, warm: bool = False) -> float:
    """Milliseconds of the fastest of ``repeat`` calls of ``fn`` (after one untimed call when ``warm``)."""
    if warm:
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return 1e3 * best
