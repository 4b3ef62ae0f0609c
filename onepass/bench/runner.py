"""Run every measurement in order of importance, within a wall-time budget."""

from __future__ import annotations

import time
from typing import Callable

from . import engine_runs, hf_runs
from .audio import speech_like
from .capacity import search
from .factory import ModelPair
from .measure import load_average, machine
from .report import to_json
from .results import BenchConfig, Capacity, MemoryRun, OfflineRun, StreamRun


def run_bench(pair: ModelPair, config: BenchConfig, started: float | None = None,
              log: Callable[[str], None] = lambda _: None) -> dict:
    """All measurements; returns the JSON-ready result (see ``report.to_json``)."""
    started = time.monotonic() if started is None else started
    deadline = started + config.budget_s
    asr, hf = pair.recognizer, (pair.hf_model if config.compare_transformers else None)
    if config.prepack:
        log(f"prepacked {asr.model.prepack()} linear layers for oneDNN")
    info = machine()
    lang = asr.language(config.language)
    prompt = lang.prompt if asr.config.has_prompt else None
    supported = set(asr.config.supported_chunk_ms())
    chunk_list = [c for c in config.chunk_ms if c in supported]
    skipped = [c for c in config.chunk_ms if c not in supported]
    if skipped:
        log(f"skipping chunk sizes this model does not support: {skipped}")
    seed = config.seed
    stream_audio = speech_like(config.stream_s, seed + 1)
    warm = speech_like(1.5, seed + 2)

    streams: list[StreamRun] = []
    for c in chunk_list:
        engine_runs.stream_run(asr, warm, c, config.language)  # position tables, allocator
        streams.append(engine_runs.stream_run(asr, stream_audio, c, config.language))
        log(f"single stream {c} ms: onepass RTFx {streams[-1].rtfx:.2f}")
        if hf is not None:
            hf_runs.stream_run(hf, pair.hf_features, warm[:8000], c, prompt)
            streams.append(hf_runs.stream_run(hf, pair.hf_features, stream_audio, c, prompt))
            log(f"single stream {c} ms: transformers RTFx {streams[-1].rtfx:.2f}")

    offline: list[OfflineRun] = []
    file_audio = speech_like(config.offline_s, seed + 3)
    asr.transcribe_batch([warm], language=config.language)
    offline.append(engine_runs.offline_run(asr, file_audio, config.language))
    log(f"offline {config.offline_s:.0f} s: onepass RTFx {offline[-1].rtfx:.2f}")
    if hf is not None:
        r = asr.config.default_right_context
        hf_runs.offline_run(hf, pair.hf_features, warm, r, prompt)
        offline.append(hf_runs.offline_run(hf, pair.hf_features, file_audio, r, prompt))
        log(f"offline {config.offline_s:.0f} s: transformers RTFx {offline[-1].rtfx:.2f}")

    memory: MemoryRun | None = None
    if config.cycles > 0 and chunk_list:
        memory = engine_runs.memory_run(asr, file_audio, max(chunk_list), config.language, config.memory_streams,
                                        config.cycles, config.cycle_decode_every)
        log(f"memory: +{memory.per_stream_mb:.1f} MB per stream; cycles {memory.cycle_rss_mb}")

    capacity: list[Capacity] = []
    mins = config.min_trial_chunks
    longest = max([engine_runs.trial_packets(config.trial_s, c, mins) * c / 1000 for c in chunk_list], default=0.0)
    clips = [speech_like(longest + 2.0, seed + 10 + i) for i in range(8)]
    wanted = config.capacity_chunk_ms if config.capacity_chunk_ms is not None else config.chunk_ms
    for c in sorted((c for c in wanted if c in chunk_list), reverse=True):  # the goals' chunk sizes first
        capacity.append(search(lambda n: engine_runs.trial(asr, clips, n, c, config.trial_s, config.language,
                                                           min_chunks=mins),
                               "onepass", c, "engine, staggered starts", config.max_streams, deadline, log))
        if config.aligned:  # the condition transformers gets: every stream's chunk arrives at once
            capacity.append(search(
                lambda n: engine_runs.trial(asr, clips, n, c, config.trial_s, config.language, staggered=False,
                                            min_chunks=mins),
                "onepass", c, "engine, aligned starts", config.max_streams, deadline, log))
        if hf is not None:
            capacity.append(search(
                lambda n: hf_runs.trial(hf, pair.hf_features, clips, n, c, config.trial_s, prompt, mins),
                "transformers", c, "lockstep batch, aligned starts", config.max_streams, deadline, log))

    info["load_average_end"] = load_average()
    model = {"description": pair.description, "parameters": pair.parameters, "emission_rate": pair.emission_rate,
             "language": config.language}
    return to_json(model, info, config, streams, offline, capacity, memory, time.monotonic() - started)
