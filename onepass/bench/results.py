"""Benchmark settings and results (typed, with units in the names)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BenchConfig:
    chunk_ms: tuple[int, ...] = (80, 160, 560)  # chunk sizes to measure
    stream_s: float = 10.0  # audio per single-stream measurement (seconds)
    offline_s: float = 30.0  # audio of the offline-file measurement (seconds)
    trial_s: float = 10.0  # audio per stream in one capacity trial (seconds)
    min_trial_chunks: int = 32  # ... but at least this many chunks (a p95 of fewer is the maximum)
    max_streams: int = 48  # capacity search stops here
    capacity_chunk_ms: tuple[int, ...] | None = None  # chunk sizes for the capacity search (None: all)
    compare_transformers: bool = False
    aligned: bool = True  # also search onepass capacity with aligned starts (transformers' condition)
    language: str = "en-US"
    memory_streams: int = 16  # extra streams opened to measure RSS per stream
    cycles: int = 1000  # open/close cycles for the RSS-flatness check
    cycle_decode_every: int = 50  # every n-th cycle also decodes its audio to the end
    prepack: bool = True  # NemotronASR.prepack() (load_model's CPU default): oneDNN-prepacked weights for onepass
    budget_s: float = 780.0  # wall-time budget: capacity searches stop early when it runs out
    seed: int = 0


@dataclass(frozen=True)
class StreamRun:
    """One stream pushed through chunk by chunk as fast as possible."""

    impl: str  # "onepass" or "transformers"
    chunk_ms: int
    audio_s: float
    wall_s: float
    rtfx: float  # audio_s / wall_s
    tokens: int
    frames: int  # encoder frames
    step_p50_ms: float = 0.0  # compute time of one chunk step (onepass)
    step_p95_ms: float = 0.0
    note: str = ""


@dataclass(frozen=True)
class Trial:
    """N streams fed at real-time pace for a bounded time."""

    streams: int
    passed: bool
    latency_p50_ms: float  # chunk audio complete (scheduled) -> its frames decoded; streaming chunks
    latency_p95_ms: float
    latency_max_ms: float
    final_latency_ms: float  # worst stream: last packet (and finish) -> its last frames decoded
    end_lag_max_s: float  # undecoded audio of the worst stream when its last packet was sent
    chunks: int  # chunk results measured
    steps: int  # batched model steps run
    mean_batch: float  # streams per step
    wall_s: float
    aborted: bool = False  # stopped early: a stream fell hopelessly behind
    load_1m: float = 0.0  # system load average when the trial ended (other processes show up here)


@dataclass(frozen=True)
class Capacity:
    impl: str
    chunk_ms: int
    streams: int  # largest N that passed (0: not even one stream)
    mode: str  # "engine, staggered starts" or "lockstep batch, aligned starts"
    trials: list[Trial] = field(default_factory=list)
    complete: bool = True  # False: the time budget cut the search short (streams is a lower bound)


@dataclass(frozen=True)
class OfflineRun:
    impl: str
    audio_s: float
    wall_s: float
    rtfx: float
    tokens: int
    chunk_ms: int  # attention chunk (right context) used


@dataclass(frozen=True)
class MemoryRun:
    base_mb: float  # RSS with the model loaded and one stream open
    per_stream_mb: float  # RSS per extra open stream (state touched by one decoded chunk)
    streams: int  # extra streams opened
    state_mb: float  # per-stream model state by tensor size (the floor of per_stream_mb)
    cycles: int
    cycle_rss_mb: list[float]  # RSS every cycles/10 open/close cycles
    cycle_growth_mb: float  # last - first sample
