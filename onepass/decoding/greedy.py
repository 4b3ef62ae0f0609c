"""Batched greedy RNN-T decoding with state carried across chunks.

Per encoder frame: run the joint on (frame, last prediction output); while the best label is
not blank (and fewer than ``max_symbols`` were emitted on this frame), emit it and advance the
prediction net. The prediction net starts from the blank symbol with zero LSTM state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..model.asr import NemotronASR


@dataclass
class DecoderState:
    """Prediction-net state of a batch of streams."""

    h: torch.Tensor  # (layers, B, hidden)
    c: torch.Tensor  # (layers, B, hidden)
    pred: torch.Tensor  # (B, pred_hidden) prediction output for the last emitted label

    def select(self, index: torch.Tensor) -> "DecoderState":
        return DecoderState(self.h[:, index], self.c[:, index], self.pred[index])


@dataclass
class Emissions:
    """Tokens emitted for one stream in one decoding call."""

    token_ids: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)  # absolute encoder frame of each token
    probs: list[float] = field(default_factory=list)  # softmax probability of each token


def initial_decoder_state(model: NemotronASR, batch: int) -> DecoderState:
    h, c = model.decoder_initial_state(batch)
    blank = torch.full((batch,), model.config.blank_id, dtype=torch.long, device=h.device)
    with torch.no_grad():
        pred, h, c = model.decoder(blank, h, c)
    return DecoderState(h, c, pred)


@torch.no_grad()
def greedy_decode(model: NemotronASR, enc: torch.Tensor, valid: torch.Tensor, state: DecoderState,
                  frame_offset: torch.Tensor) -> list[Emissions]:
    """enc (B, T, pred_hidden) projected encoder frames; valid (B,) frames per row;
    frame_offset (B,) absolute index of enc[:, 0]. Updates ``state`` in place."""
    blank = model.config.blank_id
    max_symbols = model.config.max_symbols_per_step
    b, t_max, _ = enc.shape
    out = [Emissions() for _ in range(b)]
    valid_list = valid.tolist()
    offsets = frame_offset.tolist()
    for t in range(max(valid_list, default=0)):
        rows = torch.tensor([i for i in range(b) if t < valid_list[i]], dtype=torch.long, device=enc.device)
        for _ in range(max_symbols):
            logits = model.joint(enc[rows, t], state.pred[rows])
            best = logits.argmax(dim=-1)
            emit = best != blank
            if not bool(emit.any()):
                break
            rows, best, logits = rows[emit], best[emit], logits[emit]
            probs = torch.softmax(logits.float(), dim=-1).gather(1, best[:, None])[:, 0]
            for r, k, p in zip(rows.tolist(), best.tolist(), probs.tolist()):
                out[r].token_ids.append(k)
                out[r].frames.append(offsets[r] + t)
                out[r].probs.append(p)
            pred, h, c = model.decoder(best, state.h[:, rows], state.c[:, rows])
            state.pred[rows] = pred
            state.h[:, rows] = h
            state.c[:, rows] = c
    return out
