"""bf16 token agreement with fp32 (TF32 off) on the same real-size random weights.

Agreement = 1 - (token edit distance) / (fp32 tokens), summed over clips: 1.0 means identical ids.
Offline (``transcribe_batch``) per chunk size; one streamed pass through the engine as well.
"""

from __future__ import annotations

import numpy as np


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance between two id sequences (substitutions, insertions, deletions)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def score(refs: list[list[int]], hyps: list[list[int]]) -> dict:
    edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    tokens = sum(len(r) for r in refs)
    return dict(clips=len(refs), fp32_tokens=tokens, bf16_tokens=sum(len(h) for h in hyps), edits=edits,
                identical_clips=sum(r == h for r, h in zip(refs, hyps)),
                agreement=round(1 - edits / tokens, 5) if tokens else None)


def clips(count: int, seconds: float, seed: int) -> list[np.ndarray]:
    from onepass.bench.audio import speech_like

    return [speech_like(seconds, seed + i) for i in range(count)]


def offline(fp32, bf16, audio: list[np.ndarray], chunk_ms: int) -> dict:
    ref = [t.token_ids for t in fp32.transcribe_batch(audio, language="en-US", chunk_ms=chunk_ms)]
    hyp = [t.token_ids for t in bf16.transcribe_batch(audio, language="en-US", chunk_ms=chunk_ms)]
    return dict(score(ref, hyp), chunk_ms=chunk_ms, mode="offline")


def streamed(fp32, bf16, audio: list[np.ndarray], chunk_ms: int) -> dict:
    """Every clip as one stream of one engine per dtype, fed a chunk at a time, all together."""
    ref, hyp = _stream(fp32, audio, chunk_ms), _stream(bf16, audio, chunk_ms)
    return dict(score(ref, hyp), chunk_ms=chunk_ms, mode="engine stream")


def _stream(asr, audio: list[np.ndarray], chunk_ms: int) -> list[list[int]]:
    from onepass.engine import Engine, EngineConfig

    engine = Engine(asr, EngineConfig(endpoint_blank_ms=None, max_streams=len(audio) + 8,
                                      max_batch=max(32, len(audio))))
    ids = [engine.open("en-US", chunk_ms) for _ in audio]
    size = chunk_ms * 16
    closed: dict[int, list[int]] = {}
    longest = max(len(a) for a in audio)
    for pos in range(0, longest, size):
        for sid, a in zip(ids, audio):
            if pos < len(a):
                engine.accept(sid, a[pos:pos + size])
                if pos + size >= len(a):
                    engine.finish(sid)
        for e in engine.run_until_idle():
            if e.kind == "closed":
                closed[e.stream_id] = list(e.transcript.token_ids)
    for e in engine.run_until_idle():
        if e.kind == "closed":
            closed[e.stream_id] = list(e.transcript.token_ids)
    return [closed[sid] for sid in ids]
