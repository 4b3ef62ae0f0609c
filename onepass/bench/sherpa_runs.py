"""sherpa-onnx on the files ``onepass export`` wrote: single-stream RTFx and batched throughput,
run the way its Python API is meant to be used (``decode_streams`` over every ready stream)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import OnePassError

TAIL_S = 0.5  # zero padding callers put after each clip: sherpa-onnx never encodes a final partial window


def padded(audio: np.ndarray) -> np.ndarray:
    """The clip both implementations get in a comparison (the tail counts as audio for both)."""
    return np.concatenate([audio, np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32)])


def recognizer(onnx_dir: str | Path, threads: int):
    try:
        import sherpa_onnx
    except ImportError:
        raise OnePassError("--compare sherpa-onnx needs `pip install sherpa-onnx==2.0.1`") from None
    d = Path(onnx_dir)
    return sherpa_onnx.OnlineRecognizer.from_transducer(
        str(d / "tokens.txt"), str(d / "encoder.onnx"), str(d / "decoder.onnx"), str(d / "joiner.onnx"),
        num_threads=threads, sample_rate=SAMPLE_RATE, feature_dim=128)


def chunk_ms_of(onnx_dir: str | Path) -> int:
    return int(json.loads((Path(onnx_dir) / "onepass_onnx.json").read_text())["chunk_ms"])


def _stream(rec, audio: np.ndarray, language: str | None):
    s = rec.create_stream()
    if language and language != "auto":
        s.set_option("language", language)
    return s


def stream_run(rec, audio: np.ndarray, chunk_ms: int, language: str | None) -> dict:
    """One stream fed chunk by chunk, each chunk decoded as soon as it is ready (give ``padded`` audio)."""
    s = _stream(rec, audio, language)
    step = chunk_ms * SAMPLE_RATE // 1000
    start = time.perf_counter()
    for pos in range(0, len(audio), step):
        s.accept_waveform(SAMPLE_RATE, audio[pos:pos + step])
        while rec.is_ready(s):
            rec.decode_stream(s)
    s.input_finished()
    while rec.is_ready(s):
        rec.decode_stream(s)
    wall = time.perf_counter() - start
    audio_s = len(audio) / SAMPLE_RATE
    tokens = len(json.loads(rec.get_result_as_json_string(s))["tokens"])
    return {"impl": "sherpa-onnx", "chunk_ms": chunk_ms, "audio_s": audio_s, "wall_s": wall,
            "rtfx": audio_s / wall, "tokens": tokens}


def throughput(rec, clips: list[np.ndarray], n: int, chunk_ms: int, language: str | None) -> dict:
    """n streams (``padded`` clips) with all their audio available; decode_streams over the ready ones until done.
    Aggregate RTFx = audio seconds / wall seconds (not paced: an upper bound on capacity)."""
    streams = []
    for i in range(n):
        s = _stream(rec, clips[i % len(clips)], language)
        s.accept_waveform(SAMPLE_RATE, clips[i % len(clips)])
        s.input_finished()
        streams.append(s)
    start = time.perf_counter()
    batches = 0
    while True:
        ready = [s for s in streams if rec.is_ready(s)]
        if not ready:
            break
        rec.decode_streams(ready)
        batches += 1
    wall = time.perf_counter() - start
    audio_s = sum(len(clips[i % len(clips)]) for i in range(n)) / SAMPLE_RATE
    return {"impl": "sherpa-onnx", "chunk_ms": chunk_ms, "streams": n, "audio_s": audio_s, "wall_s": wall,
            "rtfx": audio_s / wall, "batches": batches}
