"""onepass measurements, all through the public engine API (``Engine.open/accept/finish/step``)
and ``Recognizer.transcribe_batch``: single-stream RTFx, paced multi-stream trials, offline RTFx,
memory."""

from __future__ import annotations

import dataclasses
import gc
import heapq
import time

import numpy as np

from ..audio import SAMPLE_RATE
from ..engine import Engine, EngineConfig
from ..recognizer import FRAME_S, Recognizer
from .measure import load_average, percentile, rss_mb
from .results import MemoryRun, OfflineRun, StreamRun, Trial


def packet_samples(chunk_ms: int) -> int:
    return chunk_ms * SAMPLE_RATE // 1000


def trial_packets(trial_s: float, chunk_ms: int, min_chunks: int) -> int:
    """Packets (chunks) per stream in a capacity trial: trial_s of audio, at least min_chunks."""
    return max(min_chunks, int(trial_s * 1000 / chunk_ms))


def stream_run(asr: Recognizer, audio: np.ndarray, chunk_ms: int, language: str) -> StreamRun:
    """Push one stream through the engine chunk by chunk, as fast as it goes."""
    engine = Engine(asr, EngineConfig(endpoint_blank_ms=None))
    sid = engine.open(language, chunk_ms)
    size = packet_samples(chunk_ms)
    steps: list[float] = []
    closed = None

    def drain():
        nonlocal closed
        while engine.has_work():
            t = time.perf_counter()
            events = engine.step()
            steps.append(time.perf_counter() - t)
            closed = next((e for e in events if e.kind == "closed"), closed)

    start = time.perf_counter()
    for pos in range(0, len(audio), size):
        engine.accept(sid, audio[pos:pos + size])
        drain()
    engine.finish(sid)
    drain()
    wall = time.perf_counter() - start
    audio_s = len(audio) / SAMPLE_RATE
    return StreamRun("onepass", chunk_ms, audio_s, wall, audio_s / wall, len(closed.transcript.token_ids),
                     round(closed.end_s / FRAME_S), 1000 * percentile(steps, 50), 1000 * percentile(steps, 95))


def offline_run(asr: Recognizer, audio: np.ndarray, language: str) -> OfflineRun:
    start = time.perf_counter()
    result = asr.transcribe_batch([audio], language=language)[0]
    wall = time.perf_counter() - start
    r = asr.config.default_right_context
    audio_s = len(audio) / SAMPLE_RATE
    return OfflineRun("onepass", audio_s, wall, audio_s / wall, len(result.token_ids), (r + 1) * 80)


def trial(asr: Recognizer, clips: list[np.ndarray], n: int, chunk_ms: int, trial_s: float,
          language: str, staggered: bool = True, min_chunks: int = 32,
          engine_config: EngineConfig | None = None) -> Trial:
    """n streams, stream i starting i/n of a chunk after stream 0 (``staggered``; else all at
    once), each sent one chunk of audio when its wall-clock time comes; the engine steps
    whenever any stream has a chunk ready. ``engine_config``: the engine's settings (e.g. a
    larger ``max_batch`` on a GPU); endpointing is off and ``max_streams`` at least n.

    A chunk's latency runs from the scheduled arrival of the packet that completes it to the
    step that decodes it (so a feeder delayed by a long step counts against the engine). The
    feeder's own work per loop is proportional to the packets due and the streams stepped (a
    heap of due times; only the stepped streams are read back), not to n, so it does not cap
    the capacity it measures at thousands of streams."""
    chunk_s = chunk_ms / 1000
    size = packet_samples(chunk_ms)
    packets = trial_packets(trial_s, chunk_ms, min_chunks)
    per_chunk = asr.config.right_context_for_chunk_ms(chunk_ms) + 1  # encoder frames per chunk
    base = engine_config or EngineConfig()
    engine = Engine(asr, dataclasses.replace(base, endpoint_blank_ms=None, max_streams=max(n, base.max_streams)))
    for sid in [engine.open(language, chunk_ms) for _ in range(n)]:  # grow the slot pool outside the clock
        engine.close(sid)
    # distinct audio per stream: the clips, rotated by a different offset each time round
    audio = [np.roll(clips[i % len(clips)], -(i // len(clips)) * 5939)[:packets * size] for i in range(n)]
    abort_lag = max(2.0, 0.15 * trial_s) + chunk_s
    ids: list[int | None] = [None] * n
    index: dict[int, int] = {}
    sent, decoded, chunks_done = [0] * n, [0] * n, [0] * n
    closed, end_lag = [False] * n, [0.0] * n
    latencies: list[float] = []
    finals: list[float] = []  # the tail flushed by finish(): queued behind the last full chunk
    steps = batch_total = 0
    t0 = time.monotonic() + 0.02
    offsets = [t0 + (i * chunk_s / n if staggered else 0.0) for i in range(n)]

    def due(i: int, packet: int) -> float:
        return offsets[i] + (min(packet, packets - 1) + 1) * chunk_s

    queue = [(offsets[i], i) for i in range(n)]  # (when, stream): its open, then each packet
    heapq.heapify(queue)
    closed_count = 0
    aborted = False
    while closed_count < n:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, i = heapq.heappop(queue)
            if ids[i] is None:
                ids[i] = engine.open(language, chunk_ms)
                index[ids[i]] = i
            else:
                engine.accept(ids[i], audio[i][sent[i] * size:(sent[i] + 1) * size])
                sent[i] += 1
                if sent[i] == packets:
                    engine.finish(ids[i])
                    end_lag[i] = packets * chunk_s - decoded[i] * FRAME_S
                aborted |= sent[i] * chunk_s - decoded[i] * FRAME_S > abort_lag  # (a lag grows only here)
            if sent[i] < packets:
                heapq.heappush(queue, (due(i, sent[i]), i))
        if aborted:  # report how far behind the worst stream was when the trial stopped
            end_lag = [max(sent[i] * chunk_s - decoded[i] * FRAME_S for i in range(n))]
            break
        if not engine.has_work():
            time.sleep(max(0.0, (queue[0][0] if queue else now) - time.monotonic()))
            continue
        events = engine.step()
        t = time.monotonic()
        steps += 1
        stepped = {index[sid] for sid in engine.last_streams}
        for e in events:
            if e.kind == "closed":
                i = index[e.stream_id]
                closed[i] = True
                closed_count += 1
                stepped.add(i)
                decoded[i] = round(e.end_s / FRAME_S)
        for i in stepped:
            if not closed[i]:
                decoded[i] = engine.stream(ids[i]).frames_decoded
            done = -(-decoded[i] // per_chunk) if closed[i] else decoded[i] // per_chunk
            for j in range(chunks_done[i], done):
                (latencies if j < packets else finals).append(t - due(i, j))
            chunks_done[i] = done
        batch_total += len(stepped)
    wall = time.monotonic() - t0
    for sid in list(engine.streams):
        engine.close(sid)
    p95 = percentile(latencies, 95)
    lag = max(end_lag)
    passed = not aborted and p95 <= chunk_s and lag <= 2 * chunk_s + 0.1
    return Trial(n, passed, 1000 * percentile(latencies, 50), 1000 * p95, 1000 * max(latencies, default=0.0),
                 1000 * max(finals + latencies[-1:], default=0.0), lag, len(latencies), steps,
                 batch_total / max(1, steps), wall, aborted, (load_average() or [0.0])[0])


def memory_run(asr: Recognizer, audio: np.ndarray, chunk_ms: int, language: str, extra: int,
               cycles: int, decode_every: int) -> MemoryRun:
    """RSS per extra open stream, and RSS over many open/close cycles."""
    size = packet_samples(chunk_ms)
    engine = Engine(asr, EngineConfig(endpoint_blank_ms=None, max_streams=extra + 8, max_batch=extra + 1))
    first = engine.open(language, chunk_ms)
    engine.accept(first, audio[:2 * size])
    engine.run_until_idle()
    gc.collect()
    base = rss_mb()
    ids = [engine.open(language, chunk_ms) for _ in range(extra)]
    for i, sid in enumerate(ids):
        engine.accept(sid, audio[i * 37:i * 37 + 2 * size])
    engine.run_until_idle()
    gc.collect()
    per_stream = (rss_mb() - base) / extra
    for sid in ids + [first]:
        engine.close(sid)
    samples = []
    piece = audio[:3 * size]
    for c in range(cycles + 1):
        if c % max(1, cycles // 10) == 0:
            gc.collect()
            samples.append(round(rss_mb(), 1))
        if c == cycles:
            break
        sid = engine.open(language, chunk_ms)
        engine.accept(sid, piece)
        if c % decode_every == 0:
            engine.finish(sid)
            engine.run_until_idle()  # ends with "closed", which releases the slot
        else:
            engine.close(sid)
    return MemoryRun(round(base, 1), round(per_stream, 2), extra, round(_state_mb(asr), 2), cycles, samples,
                     round(samples[-1] - samples[0], 1))


def _state_mb(asr: Recognizer) -> float:
    """Bytes of one stream's model state (one row of a state arena: encoder caches, subsampling
    and decoder state, frame counters)."""
    arena = asr.model_step.arena(asr.config.default_right_context, capacity=1)
    return arena.state_bytes_per_stream() / 2**20
