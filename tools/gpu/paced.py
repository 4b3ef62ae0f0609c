"""Paced capacity per chunk size: the most streams fed at real-time pace that pass a trial.

A trial is ``onepass.bench.engine_runs.trial`` (p95 chunk latency <= the chunk, no stream more
than 2 chunks behind). The search is seeded, because a doubling search from 1 to thousands of
streams does not fit a device lease: it starts at a guess (from the step times), doubles or halves
until it brackets the capacity, then bisects while the bracket is wider than ``ratio`` and time
is left. ``complete`` is False where the deadline cut it short (the number is then a lower bound).

Each trial starts a new engine, so with CUDA graphs its first steps of every bucket run eagerly
(the step's warm-up) and are then captured, inside the trial's clock: the graph figures include
that start-up cost (a few of a trial's first chunks), the eager ones have none.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager

import torch

from report import Unavailable

from onepass.bench.capacity import bracket  # noqa: F401  (tests import it from here)

BIG_BATCH = 1 << 16  # "no limit" on streams per step: the engine's default (32) would cap capacity


@contextmanager
def engine_settings(**overrides):
    """Engine settings for the trials, through ``trial(engine_config=...)`` (fields EngineConfig
    does not have are dropped and reported)."""
    from onepass.engine import EngineConfig

    known = EngineConfig.__dataclass_fields__
    applied = {k: v for k, v in overrides.items() if k in known}
    yield dict(applied=applied, ignored=sorted(set(overrides) - set(applied)), via="trial(engine_config=...)",
               kwargs={"engine_config": EngineConfig(**applied)})


def step_setter(mode: str, asr):
    """A function that gives ``asr`` a fresh model step for ``mode`` ("graphs" or "eager"), and a
    note; called before every trial, so no trial's engine can meet graphs captured on an earlier
    trial's arenas (graphs are keyed by ``id(arena)``, which Python reuses once an arena is gone)."""
    try:
        from onepass.step import StepConfig
    except ImportError as exc:
        raise Unavailable(f"onepass.step is not importable ({exc})") from None
    if not hasattr(asr, "configure_step") or "cuda_graphs" not in StepConfig.__dataclass_fields__:
        raise Unavailable("Recognizer.configure_step(StepConfig(cuda_graphs=...)) is missing in this checkout")
    graphs = mode == "graphs"
    note = ("CUDA graphs" if asr.device.type == "cuda" else "no CUDA here: the step runs eagerly") if graphs \
        else "eager step"
    return (lambda: asr.configure_step(StepConfig(cuda_graphs=graphs))), note


def search(asr, clips, chunk_ms: int, guess: int, max_streams: int, trial_s: float, min_chunks: int,
           deadline: float, ratio: float, settings: dict, prepare, log) -> dict:
    from onepass.bench.engine_runs import trial

    cuda = asr.device.type == "cuda"
    trials: list[dict] = []

    def run(n: int) -> bool | None:
        if time.monotonic() + trial_s + 2 > deadline:
            return None
        prepare()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            t = trial(asr, clips, n, chunk_ms, trial_s, "en-US", staggered=True, min_chunks=min_chunks,
                      **settings["kwargs"])
        except torch.cuda.OutOfMemoryError:  # as good as a failed trial: n streams do not fit
            trials.append(dict(streams=n, passed=False, error="CUDA out of memory"))
            log(f"    {chunk_ms} ms x {n}: out of memory -> fail")
            return False
        row = dataclasses.asdict(t)
        row["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None
        trials.append(row)
        log(f"    {chunk_ms} ms x {n}: p95 {t.latency_p95_ms:.0f} ms, lag {t.end_lag_max_s:.2f} s, "
            f"batch {t.mean_batch:.1f} -> {'pass' if t.passed else 'fail'}{' (aborted)' if t.aborted else ''}")
        return t.passed

    best, worst, complete = bracket(run, guess, max_streams, ratio)
    return dict(chunk_ms=chunk_ms, streams=best, first_failure=worst, guess=guess, complete=complete,
                at_max_streams=best >= max_streams, trials=trials)


def seed_guess(step_ms: dict[int, float], chunk_ms: int) -> int:
    """Largest measured bucket whose step takes at most half the chunk (1 when none does)."""
    fits = [b for b, ms in step_ms.items() if ms <= 0.5 * chunk_ms]
    return max(fits, default=1)
