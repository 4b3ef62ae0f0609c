"""Capacity search: the largest number of paced streams that still pass a trial.

N doubles from 1 while trials pass, then bisects between the last pass and the first failure.
A trial passes when the p95 chunk latency is within the chunk duration and no stream ends more
than two chunks (+100 ms) behind real time (see ``engine_runs.trial``)."""

from __future__ import annotations

import time
from typing import Callable

from .results import Capacity, Trial


def search(trial: Callable[[int], Trial], impl: str, chunk_ms: int, mode: str, max_streams: int,
           deadline: float, log: Callable[[str], None] = lambda _: None) -> Capacity:
    trials: list[Trial] = []

    def run(n: int) -> bool | None:
        if time.monotonic() > deadline:
            return None
        t = trial(n)
        trials.append(t)
        log(f"  {impl} {chunk_ms} ms, {n} streams: p95 {t.latency_p95_ms:.0f} ms, end lag {t.end_lag_max_s:.2f} s, "
            f"batch {t.mean_batch:.1f}, load {t.load_1m:.1f} -> {'pass' if t.passed else 'fail'}"
            f"{' (aborted)' if t.aborted else ''}")
        return t.passed

    best, _, complete = bracket(run, 1, max_streams, ratio=1.0)
    return Capacity(impl, chunk_ms, best, mode, trials, complete)


def bracket(run, guess: int, max_streams: int, ratio: float) -> tuple[int, int | None, bool]:
    """(largest passing n, smallest failing n, complete) for ``run(n)`` -> True (pass), False (fail)
    or None (no time left): from ``guess``, double or halve until pass and fail are bracketed, then
    bisect while the failure is more than ``ratio`` times the pass."""
    best, worst = 0, None
    n, complete = max(1, min(guess, max_streams)), True
    while True:
        ok = run(n)
        if ok is None:
            complete = False
            break
        if ok:
            best = n
            if worst is not None or n >= max_streams:
                break
            n = min(2 * n, max_streams)
        else:
            worst = n
            if best or n == 1:
                break
            n = max(1, n // 2)
    while complete and worst is not None and best and worst > best * ratio and worst - best > 1:
        mid = (best + worst) // 2
        ok = run(mid)
        if ok is None:
            complete = False
        elif ok:
            best = mid
        else:
            worst = mid
    return best, worst, complete
