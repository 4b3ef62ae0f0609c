"""The Serve replica: one model, one engine, the very app `onepass serve` runs.

Serve builds the app through ``__serve_build_asgi_app__`` after the model is loaded, so every
endpoint, protocol, API key check, metric and the browser page are the same code as on one
machine; the replica adds only load reports for the autoscaler and the drain on stop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from . import drain
from .config import ReplicaConfig

log = logging.getLogger("ray.serve")  # Serve routes it to the replica's log and the console


class OnePassReplica:
    """Deployment class (wrapped by ``serve.ingress()`` in ``deployment.build``)."""

    async def __init__(self, config: ReplicaConfig):
        from ..server import create_app
        from ..server.capacity import calibrate

        asr = await asyncio.to_thread(config.model.load)
        server = config.server
        asr.config.right_context_for_chunk_ms(server.chunk_ms)  # a bad chunk size fails the replica at once
        if server.hotwords:  # the server-wide list fits the limits once tokenized, as in `onepass serve`
            asr.hotwords(server.stream_hotwords())
        if config.auto_streams:
            cal = await asyncio.to_thread(calibrate, asr, server.chunk_ms)
            log.info("replica %s", cal.describe())
            server = dataclasses.replace(server, max_streams=cal.capacity, max_batch=cal.capacity)
        self._app = create_app(asr, server)
        self._state = self._app.state.onepass
        self._loop = asyncio.get_running_loop()
        self._drain_task: asyncio.Future | None = None
        self._last = (time.monotonic(), self._step_seconds())
        drain.on_stop(self)

    def __serve_build_asgi_app__(self):
        return self._app

    # ---- Serve hooks -------------------------------------------------------------------
    def check_health(self) -> None:
        """Serve restarts a replica whose engine thread died."""
        if not self._state.runner.alive:
            raise RuntimeError("the engine thread has stopped")

    def record_autoscaling_stats(self) -> dict[str, float]:
        """The engine's own load, for ``autoscale.stream_load_policy``: streams held, the stream
        limit, and the fraction of wall time spent in engine steps since the last report."""
        runner = self._state.runner
        now, stepped = time.monotonic(), self._step_seconds()
        then, stepped_then = self._last
        self._last = (now, stepped)
        busy = (stepped - stepped_then) / (now - then) if now > then else 0.0
        return {"active_streams": float(runner.active), "capacity": float(runner.capacity),
                "busy": min(1.0, max(0.0, busy))}

    # ---- drain on stop -----------------------------------------------------------------
    def begin_drain(self) -> None:
        """Called (from Serve's thread) when Serve starts stopping this replica."""
        if self._drain_task is None:
            self._drain_task = asyncio.run_coroutine_threadsafe(self._drain(), self._loop)

    async def _drain(self) -> None:
        from ..server.serving import drain as drain_streams

        timeout = self._state.config.drain_timeout_s
        left = await drain_streams(self._state, timeout)
        if left:
            log.warning("%d stream(s) did not finish within %g s of the replica stopping", left, timeout)

    def _step_seconds(self) -> float:
        return self._state.metrics.step_seconds._value.get()
