"""The same measurements for transformers' implementation, run the way its documentation runs it.

Streaming uses its cache-aware ``generate`` with a generator of mel chunks (first chunk 1 + 8r
frames, then 8(r+1); the last one zero-padded to full size, which its generate requires). That
generate decodes a batch in lockstep and asks for the next chunk only when every row has used up
the current one, so transformers' multi-stream mode is a lockstep batch: we give it its best case,
aligned starts (staggered clients would each wait up to one more chunk for the batch to fill).

transformers 5.23 bug: in a streaming batch, a row that uses up a chunk before the others is marked
finished for good by generate's stopping logic, and generate returns once every row has been marked
at some point (after a few chunks with 4+ distinct clips). So every row of a lockstep batch gets
the same clip (same work per row; the decode loop runs max-over-rows symbols per frame, which the
identical rows make as small as it can be: again transformers' best case).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from .engine_runs import trial_packets
from .measure import load_average, percentile
from .results import OfflineRun, StreamRun, Trial

FRAME_S = 0.08


class _FellBehind(Exception):
    pass


def _quiet() -> None:
    import warnings

    from transformers.utils import logging

    logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*max_length.*")


def features(hf_features, audios: list[np.ndarray]) -> torch.Tensor:
    """(B, T, mels) log-mel of equal-length clips."""
    out = hf_features([np.asarray(a, np.float32) for a in audios], sampling_rate=SAMPLE_RATE, return_tensors="pt")
    return out["input_features"]


def chunks(feats: torch.Tensor, r: int, factor: int = 8) -> list[torch.Tensor]:
    first, size = 1 + factor * r, factor * (r + 1)
    out = [feats[:, :first]]
    for pos in range(first, feats.shape[1], size):
        piece = feats[:, pos:pos + size]
        if piece.shape[1] < size:
            piece = torch.nn.functional.pad(piece, (0, 0, 0, size - piece.shape[1]))
        out.append(piece)
    return out


def _prompt_kwargs(hf, batch: int, prompt: int | None) -> dict:
    if hasattr(hf, "prompt_projector") and prompt is not None:
        return {"prompt_ids": torch.full((batch,), prompt, dtype=torch.long)}
    return {}


def _tokens(hf, sequences: torch.Tensor) -> int:
    blank, pad = hf.config.blank_token_id, hf.config.pad_token_id
    row = sequences[0, 1:].tolist()
    return sum(1 for t in row if t not in (blank, pad))


@torch.no_grad()
def stream_run(hf, hf_features, audio: np.ndarray, chunk_ms: int, prompt: int | None) -> StreamRun:
    """One stream through transformers' streaming generate, as fast as it goes (features included)."""
    _quiet()
    r = chunk_ms // 80 - 1
    start = time.perf_counter()
    pieces = chunks(features(hf_features, [audio]), r)
    out = hf.generate(input_features=(p for p in pieces), num_lookahead_tokens=r,
                      return_dict_in_generate=True, **_prompt_kwargs(hf, 1, prompt))
    wall = time.perf_counter() - start
    audio_s = len(audio) / SAMPLE_RATE
    frames = len(pieces) * (r + 1)
    return StreamRun("transformers", chunk_ms, audio_s, wall, audio_s / wall, _tokens(hf, out.sequences), frames,
                     note="streaming generate, mel chunks from a generator")


@torch.no_grad()
def offline_run(hf, hf_features, audio: np.ndarray, right_context: int, prompt: int | None) -> OfflineRun:
    _quiet()
    start = time.perf_counter()
    inputs = hf_features(np.asarray(audio, np.float32), sampling_rate=SAMPLE_RATE, return_tensors="pt")
    out = hf.generate(input_features=inputs["input_features"], attention_mask=inputs["attention_mask"],
                      num_lookahead_tokens=right_context, return_dict_in_generate=True,
                      **_prompt_kwargs(hf, 1, prompt))
    wall = time.perf_counter() - start
    audio_s = len(audio) / SAMPLE_RATE
    return OfflineRun("transformers", audio_s, wall, audio_s / wall, _tokens(hf, out.sequences),
                      (right_context + 1) * 80)


@torch.no_grad()
def trial(hf, hf_features, clips: list[np.ndarray], n: int, chunk_ms: int, trial_s: float,
          prompt: int | None, min_chunks: int = 32) -> Trial:
    """n streams as one lockstep batch, chunk k of every stream handed over at its wall-clock time.
    A chunk is done when generate asks for the next one (all rows have decoded it)."""
    _quiet()
    chunk_s = chunk_ms / 1000
    r = chunk_ms // 80 - 1
    size = chunk_ms * SAMPLE_RATE // 1000
    packets = trial_packets(trial_s, chunk_ms, min_chunks)
    pieces = chunks(features(hf_features, [clips[0][:packets * size]] * n), r)
    abort_lag = max(2.0, 0.15 * trial_s) + chunk_s
    done_at: list[float] = []  # wall time each chunk was decoded by every row
    t0 = time.monotonic() + 0.02

    def due(k: int) -> float:
        return t0 + (min(k, packets - 1) + 1) * chunk_s

    def paced():
        for k, piece in enumerate(pieces):
            now = time.monotonic()
            if k > 0:
                done_at.append(now)
                if min(packets, int((now - t0) / chunk_s)) * chunk_s - k * chunk_s > abort_lag:
                    raise _FellBehind
            wait = due(k) - now
            if wait > 0:
                time.sleep(wait)
            yield piece
        done_at.append(time.monotonic())

    aborted = False
    try:
        hf.generate(input_features=paced(), num_lookahead_tokens=r, return_dict_in_generate=True,
                    **_prompt_kwargs(hf, n, prompt))
    except _FellBehind:
        aborted = True
    if not aborted and len(done_at) < len(pieces):
        raise RuntimeError(f"transformers' generate stopped after {len(done_at)} of {len(pieces)} chunks")
    wall = time.monotonic() - t0
    latencies = [t - due(k) for k, t in enumerate(done_at) if k < packets]
    finals = [t - due(k) for k, t in enumerate(done_at)][-1:]
    p95 = percentile(latencies, 95)
    lag = packets * chunk_s - chunk_s * sum(1 for t in done_at if t <= due(packets - 1))
    passed = not aborted and p95 <= chunk_s and lag <= 2 * chunk_s + 0.1
    return Trial(n, passed, 1000 * percentile(latencies, 50), 1000 * p95, 1000 * max(latencies, default=0.0),
                 1000 * max(finals, default=0.0), lag, len(latencies) * n, len(done_at), float(n), wall, aborted,
                 (load_average() or [0.0])[0])
