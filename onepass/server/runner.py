"""One engine per process, stepped by a background thread.

The asyncio side never touches the engine: it queues commands (open, accept, finish...) that
the engine thread runs between steps, in order, and gets each stream's events on its own
asyncio queue. Admission (a lease per stream) is counted on the asyncio side, before any
WebSocket upgrade, so a refused client costs nothing.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import queue
import threading
import time
from typing import Callable

import numpy as np

from ..engine import Engine, StreamEvent
from .metrics import Metrics


class Lease:
    """A reserved stream place; release() exactly once (idempotent)."""

    def __init__(self, runner: "EngineRunner"):
        self._runner = runner
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._runner.active -= 1
            self._runner.metrics.active.set(self._runner.active)


class EngineRunner:
    def __init__(self, engine: Engine, metrics: Metrics, capacity: int, default_chunk_ms: int | None = None):
        self.engine = engine
        self.default_chunk_ms = default_chunk_ms  # for streams that do not choose a chunk size
        self.metrics = metrics
        self.capacity = capacity
        self.active = 0  # leases held (asyncio thread only)
        self._cmds: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = False
        self.draining = False  # shutting down: admit nothing new
        self._queues: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._flushes: dict[int, collections.deque] = {}  # per stream: (marker, drop) of pending flushes
        self._thread = threading.Thread(target=self._run, name="onepass-engine", daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout_s)

    # ---- admission ---------------------------------------------------------------------
    def try_lease(self) -> Lease | None:
        if self.draining or self.active >= self.capacity:
            self.metrics.refused.inc()
            return None
        self.active += 1
        self.metrics.active.set(self.active)
        return Lease(self)

    # ---- stream API (awaitable; runs on the engine thread) --------------------------------
    def call(self, fn: Callable[[Engine], object]) -> asyncio.Future:
        return asyncio.wrap_future(self._submit(fn))

    def _submit(self, fn: Callable[[Engine], object]) -> concurrent.futures.Future:
        cf: concurrent.futures.Future = concurrent.futures.Future()
        self._cmds.put((fn, cf))
        self._wake.set()
        return cf

    async def open(self, language: str | None, chunk_ms: int | None, sample_rate: int,
                   q: asyncio.Queue | None = None, endpoint_ms: int | None = None,
                   silence_ms: int | None = None, hotwords=None) -> tuple[int, asyncio.Queue]:
        """Open a stream whose events (and markers) arrive on ``q`` (a new queue by default);
        ``hotwords``: its boosted phrases (``HotwordSettings``)."""
        loop, q = asyncio.get_running_loop(), q or asyncio.Queue()
        chunk_ms = self.default_chunk_ms if chunk_ms is None else chunk_ms

        def _open(engine: Engine) -> int:
            sid = engine.open(language, chunk_ms, sample_rate, endpoint_ms=endpoint_ms, silence_ms=silence_ms,
                              hotwords=hotwords)
            self._queues[sid] = (loop, q)
            return sid

        cf = self._submit(_open)
        try:
            return await asyncio.wrap_future(cf), q
        except asyncio.CancelledError:
            # The caller is gone (a client that vanished mid-open). If the engine thread had
            # already started the open, the stream exists and nobody else knows its id: close it.
            cf.add_done_callback(self._close_orphan)
            raise

    def _close_orphan(self, cf: concurrent.futures.Future) -> None:
        if not cf.cancelled() and cf.exception() is None:
            sid = cf.result()
            self._submit(lambda engine: self._close_now(engine, sid))

    async def accept(self, sid: int, samples: np.ndarray, sample_rate: int) -> None:
        self.metrics.audio_seconds.inc(len(samples) / sample_rate)
        await self.call(lambda e: e.accept(sid, samples))

    async def set_hotwords(self, sid: int, hotwords) -> None:
        await self.call(lambda e: e.set_hotwords(sid, hotwords))

    async def set_endpointing(self, sid: int, endpoint_ms: int | None, silence_ms: int | None = None) -> None:
        await self.call(lambda e: e.set_endpointing(sid, endpoint_ms, silence_ms))

    async def finalize(self, sid: int, marker: object = None, drop: bool = False) -> None:
        """Flush: decode all audio received so far and end the utterance there (the stream stays
        open, later audio is a new segment); then put ``marker`` on the stream's queue, after the
        segment's events (``drop``: discard those events, as when a client clears its buffer)."""
        def _finalize(engine: Engine) -> None:
            if sid not in engine.streams:
                return
            flushes = self._flushes.setdefault(sid, collections.deque())
            flushes.append((marker, drop))
            try:
                events = engine.finalize(sid, flush=True)
            except Exception:
                flushes.pop()
                raise
            self._dispatch(events)

        await self.call(_finalize)

    async def finish(self, sid: int) -> None:
        await self.call(lambda e: e.finish(sid))

    async def close(self, sid: int) -> None:
        await self.close_soon(sid)

    def close_soon(self, sid: int) -> asyncio.Future:
        """Drop a stream; queued at once, so it happens even when the caller is being cancelled
        (a client gone mid-response) and cannot await anything more."""
        return self.call(lambda engine: self._close_now(engine, sid))

    def _close_now(self, engine: Engine, sid: int) -> None:  # on the engine thread
        self._queues.pop(sid, None)
        self._flushes.pop(sid, None)
        engine.close(sid)

    # ---- engine thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.clear()
            self._drain()
            if self._stop:
                return
            if self.engine.has_work():
                self._step()
            else:
                self._wake.wait(0.5)

    def _drain(self) -> None:
        while True:
            try:
                fn, cf = self._cmds.get_nowait()
            except queue.Empty:
                return
            if not cf.set_running_or_notify_cancel():
                continue
            try:
                cf.set_result(fn(self.engine))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting client
                cf.set_exception(exc)

    def _step(self) -> None:
        e = self.engine
        t0 = time.perf_counter()
        try:
            events = e.step()
        except Exception as exc:  # noqa: BLE001 - a step must not kill the thread
            self._fail_all(exc)
            return
        self.metrics.step_seconds.inc(time.perf_counter() - t0)
        for n in e.last_batches:
            self.metrics.batch_size.observe(n)
        for ev in events:
            self.metrics.observe_event(ev)
        self._dispatch(events)

    def _dispatch(self, events: list[StreamEvent]) -> None:
        for ev in events:
            target = self._queues.get(ev.stream_id)
            flushes = self._flushes.get(ev.stream_id)
            marker, drop = flushes[0] if flushes else (None, False)
            if target is not None and not (drop and ev.kind != "closed"):
                target[0].call_soon_threadsafe(target[1].put_nowait, ev)
            if ev.kind == "flushed" and flushes:
                flushes.popleft()
                if marker is not None and target is not None:
                    target[0].call_soon_threadsafe(target[1].put_nowait, marker)
            if ev.kind == "closed":
                self._queues.pop(ev.stream_id, None)
                self._flushes.pop(ev.stream_id, None)

    def _fail_all(self, exc: Exception) -> None:
        """An engine step failed: end every stream with an error rather than hang them."""
        for sid, (loop, q) in list(self._queues.items()):
            loop.call_soon_threadsafe(q.put_nowait, exc)
            self.engine.close(sid)
        self._queues.clear()
        self._flushes.clear()
