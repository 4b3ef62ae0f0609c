"""Learning-rate schedules: linear warmup, then cosine, linear or constant."""

from __future__ import annotations

import math

from ..errors import OnePassError
from .settings import OptimSettings

SCHEDULES = ("cosine", "linear", "constant")


def decay_progress(step: int, warmup_steps: int, total_steps: int) -> float:
    """Fraction of the decay done at ``step`` (0 during warmup, 1 at total_steps)."""
    return min(1.0, max(0.0, (step - warmup_steps) / max(1, total_steps - warmup_steps)))


def lr_at(step: int, total_steps: int, cfg: OptimSettings, time_fraction: float | None = None) -> float:
    """Learning rate of optimizer step ``step`` (0-based). ``time_fraction`` (of a wall-clock budget)
    squeezes the decay: its fraction is the larger of the steps' and the time's."""
    if cfg.schedule not in SCHEDULES:
        raise OnePassError(f"unknown schedule {cfg.schedule!r}; use one of {', '.join(SCHEDULES)}")
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = decay_progress(step, cfg.warmup_steps, total_steps)
    if time_fraction is not None:
        p = min(1.0, max(p, time_fraction))
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "linear":
        return cfg.lr * (1.0 - (1.0 - cfg.lr_floor) * p)
    return cfg.lr * (cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * p)))
