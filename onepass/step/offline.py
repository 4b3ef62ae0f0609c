"""Offline transcription through the step: whole utterances as blocks of chunks.

An utterance's features are cut into blocks of ``chunks`` chunks; each block is one step on a
state arena of one row per utterance, exactly like a stream that received all its audio at once
(the first block gets the first-chunk lead, the last one is final). Rows that have ended leave
the batch.
"""

from __future__ import annotations

import torch

from ..decoding.greedy import Emissions
from ..decoding.phrases import CompiledPhrases
from ..decoding.transcript import extend
from ..model.config import check_right_context
from .batch import Row, make_batch, mel_frames
from .runner import ModelStep

OFFLINE_BLOCK_FRAMES = 96  # encoder frames per offline block (~7.7 s): bounds memory on long audio


def decode_features(step: ModelStep, feats: torch.Tensor, mel_len: list[int], right_context: int,
                    prompts: list[int], trees: list[CompiledPhrases | None] | None = None) -> list[Emissions]:
    """Labels of B utterances from their features (B, T, mels) with ``mel_len`` valid frames each;
    ``trees``: each utterance's boosting phrases (None: none)."""
    arena = step.arena(right_context, capacity=len(mel_len), growth=1, replayable=False)  # one call, eager
    slots = [arena.acquire() for _ in mel_len]
    for slot, tree in zip(slots, trees or ()):
        if tree is not None and tree.nodes > 1:
            arena.attach_boost(slot, arena.boost.add(tree))
    chunks = max(1, OFFLINE_BLOCK_FRAMES // (right_context + 1))
    out = [Emissions() for _ in mel_len]
    lead, pos, first = step.first_lead(), 0, True
    live = list(range(len(mel_len)))
    while live:
        size = mel_frames(first, right_context, step.factor, chunks)
        rows = [Row(slots[i], feats[i, pos:min(pos + size, mel_len[i])], lead if first else 0,
                    mel_len[i] <= pos + size, prompts[i]) for i in live]
        result = step.run_rows(arena, rows, chunks)
        for i, e in zip(live, result.emissions):
            extend(out[i], e)
        live = [i for i, r in zip(live, rows) if not r.final]
        pos, first = pos + size, False
    return out


def block_mel_frames(model, right_context: int, chunks: int, first: bool) -> int:
    """Mel frames (without lead) of a block of ``chunks`` chunks; see ``batch.mel_frames``."""
    return mel_frames(first, right_context, model.config.encoder.subsampling_factor, chunks)


class StreamBatch:
    """B streams of one right context advanced block by block through the step (no lead needed
    from the caller: a first block of 1 + f*(n-1) mel frames gets it here). Blocks may have any
    length; the step pads them to a whole number of subsampling factors."""

    def __init__(self, model, batch: int, right_context: int, prompts: list[int | None]):
        check_right_context(model.config, right_context)
        self.model = model
        self.right_context = right_context
        self.step_runner = ModelStep(model)
        self.arena = self.step_runner.arena(right_context, capacity=batch, growth=1, replayable=False)
        self.slots = [self.arena.acquire() for _ in range(batch)]
        self.prompts = [p or 0 for p in prompts]
        self.started = False

    @torch.no_grad()
    def step(self, mel: torch.Tensor, valid: torch.Tensor, final: torch.Tensor,
             capture: list | None = None) -> list[Emissions]:
        """mel (B, T, mels): the next block; valid (B,) real frames per row; final (B,) last
        block of a row. Non-final rows must carry a whole number of chunks. ``capture``, if
        given, receives the encoder output (after the prompt MLP) and its valid counts."""
        s = self.step_runner
        lead = 0 if self.started else s.first_lead()
        frames = -(-(lead + mel.shape[1]) // s.factor) * s.factor
        rows = [Row(slot, mel[i, :int(valid[i])], lead, bool(final[i]), prompt)
                for i, (slot, prompt) in enumerate(zip(self.slots, self.prompts))]
        batch = make_batch(rows, frames, len(rows), s.mels, s.device, s.dtype)
        result = s.run(self.arena, batch)
        self.started = True
        if capture is not None:
            capture.append((result.encoded, torch.tensor(result.frames)))
        return result.emissions
