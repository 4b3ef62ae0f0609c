"""Admission capacity measured at start (``onepass serve --max-streams auto``).

Times batched engine steps at doubling batch sizes for one chunk size and finds how many
real-time streams fit: a batch of b streams must run one step per chunk of audio, so b fits
when one step of b streams takes at most ``margin`` x the chunk duration (the rest is left for
latency, REST uploads and other chunk sizes). Between the last batch size that fits and the
first that does not, the step time is interpolated linearly. A few seconds at most.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from ..engine import Engine, EngineConfig
from ..recognizer import FRAME_S, Recognizer

MEASURED_STEPS = 3  # timed steps per batch size (median), after one warm-up step


@dataclass(frozen=True)
class Calibration:
    chunk_ms: int  # the chunk size measured
    margin: float  # fraction of real time one step may take
    batch_sizes: tuple[int, ...]  # batch sizes timed
    step_s: tuple[float, ...]  # median step time of each, seconds
    capacity: int  # real-time streams that fit (at least 1)
    limited: bool  # True when every batch size up to the limit fit (capacity is the limit)
    seconds: float  # wall time of the calibration

    def describe(self) -> str:
        points = ", ".join(f"{b}: {t * 1000:.0f} ms" for b, t in zip(self.batch_sizes, self.step_s))
        bound = " (the limit)" if self.limited else ""
        return (f"capacity {self.capacity} streams{bound} at {self.chunk_ms} ms chunks, step time <= "
                f"{self.margin:.0%} of a chunk; step times by batch size: {points}; took {self.seconds:.1f} s")


def time_step(recognizer: Recognizer, batch: int, chunk_ms: int | None, seed: int = 0) -> float:
    """Median wall time of one batched step of ``batch`` streams with a full chunk each."""
    engine = Engine(recognizer, EngineConfig(max_batch=batch, max_streams=batch, endpoint_blank_ms=None,
                                             slot_growth=batch))
    r = recognizer.config.right_context_for_chunk_ms(chunk_ms)
    chunk = (r + 1) * round(FRAME_S * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    ids = [engine.open(None, chunk_ms) for _ in range(batch)]
    for sid in ids:  # noise, so the decoder emits tokens as on speech
        engine.accept(sid, (0.1 * rng.standard_normal(chunk * (MEASURED_STEPS + 1) + chunk // 2)).astype(np.float32))
    times = []
    for k in range(MEASURED_STEPS + 1):
        t0 = time.perf_counter()
        engine.step()
        if k:
            times.append(time.perf_counter() - t0)
    for sid in ids:
        engine.close(sid)
    return statistics.median(times)


def calibrate(recognizer: Recognizer, chunk_ms: int | None = None, margin: float = 0.5,
              limit: int = 64) -> Calibration:
    """Measure the capacity for ``chunk_ms`` (None: the model's default chunk)."""
    start = time.perf_counter()
    r = recognizer.config.right_context_for_chunk_ms(chunk_ms)
    chunk_s = (r + 1) * FRAME_S
    budget = margin * chunk_s
    time_step(recognizer, 1, chunk_ms)  # warm-up: first-call costs (allocator, kernel selection) not counted
    sizes, times = [], []
    b = 1
    while True:
        sizes.append(b)
        times.append(time_step(recognizer, b, chunk_ms))
        if times[-1] > budget or b >= limit:
            break
        b = min(2 * b, limit)
    capacity, limited = derive_capacity(sizes, times, budget)
    return Calibration(chunk_ms=round(chunk_s * 1000), margin=margin, batch_sizes=tuple(sizes), step_s=tuple(times),
                       capacity=capacity, limited=limited, seconds=time.perf_counter() - start)


def derive_capacity(sizes: list[int], times: list[float], budget_s: float) -> tuple[int, bool]:
    """(capacity, limited) from step times at increasing batch sizes: the largest batch whose step
    fits ``budget_s``, interpolated between the last size that fits and the first that does not."""
    if times[-1] <= budget_s:
        return sizes[-1], True
    if len(sizes) == 1:
        return 1, False  # not even one stream in real time; serve one anyway
    (b0, t0), (b1, t1) = (sizes[-2], times[-2]), (sizes[-1], times[-1])
    return max(1, b0 + int((budget_s - t0) / (t1 - t0) * (b1 - b0))), False
