"""Autoscaling on the engine's own load (a Serve custom policy, run by the Serve controller).

Each replica reports ``active_streams``, ``capacity`` (its stream limit) and ``busy`` (the
fraction of wall time its engine spends stepping) through ``record_autoscaling_stats``; Serve
averages them over ``look_back_period_s``. The policy asks for enough replicas that both the
streams per stream place and the engine busy time sit at ``target_load``. Serve applies the
bounds, the up/down delays (a long downscale delay: a replica stopped drains its streams and
its clients must reconnect) and the scaling factors around it.
"""

from __future__ import annotations

import math
from typing import Any

POLICY = "onepass.ray.autoscale:StreamLoadPolicy"
STAT_NAMES = ("active_streams", "capacity", "busy")


def desired_replicas(active: list[float], capacity: list[float], busy: list[float], current: int,
                     target_load: float) -> int:
    """Replicas needed so that streams / capacity and busy time average ``target_load``."""
    if not capacity:
        return current
    per_replica = sum(capacity) / len(capacity)
    by_streams = sum(active) / (per_replica * target_load) if per_replica else 0.0
    by_busy = sum(busy) / target_load
    return max(1, math.ceil(max(by_streams, by_busy) - 1e-9))


class StreamLoadPolicy:
    """Serve class policy (``AutoscalingPolicy(policy_function=POLICY, policy_kwargs=...)``)."""

    def __init__(self, target_load: float = 0.7):
        self.target_load = target_load

    def __call__(self, ctx) -> tuple[int, dict[str, Any]]:
        metrics = ctx.aggregated_metrics or {}
        running = list(ctx.running_replicas)

        def values(name: str) -> list[float]:
            by_replica = metrics.get(name) or {}
            return [float(by_replica[r]) for r in running if r in by_replica]

        capacity = values("capacity")
        if not capacity:  # no report yet (replicas starting): keep the current target
            return ctx.target_num_replicas, {}
        return desired_replicas(values("active_streams"), capacity, values("busy"), ctx.current_num_replicas,
                                self.target_load), {}
