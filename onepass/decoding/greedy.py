"""Batched greedy RNN-T decoding with state carried across chunks.

Per encoder frame: run the joint on (frame, last prediction output); while the best label is
not blank (and fewer than ``max_symbols`` were emitted on this frame), emit it and advance the
prediction net. The prediction net starts from the blank symbol with zero LSTM state.
``greedy_decode`` computes exactly that, scoring several frames per joint call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..model.asr import NemotronASR
from .boosting import BoostRows, advance, boosted_labels


@dataclass
class DecoderState:
    """Prediction-net state of a batch of streams."""

    h: torch.Tensor  # (layers, B, hidden)
    c: torch.Tensor  # (layers, B, hidden)
    pred: torch.Tensor  # (B, pred_hidden) prediction output for the last emitted label


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


JOINT_ROWS = 32  # joint rows per call: frames looked ahead per stream = JOINT_ROWS // streams (1..8)


@torch.no_grad()
def greedy_decode(model: NemotronASR, enc: torch.Tensor, valid: torch.Tensor, state: DecoderState,
                  frame_offset: torch.Tensor, boost: BoostRows | None = None) -> list[Emissions]:
    """enc (B, T, pred_hidden) projected encoder frames; valid (B,) frames per row;
    frame_offset (B,) absolute index of enc[:, 0]. Updates ``state`` in place. ``boost``: phrase
    boosting of the rows (``boosting``; its ``node`` is updated in place): whether a frame emits is
    the model's call, which label it emits is boosted; None: no boosting.

    Same result as the frame-by-frame loop, with fewer passes over the joint's weights (13088 x
    640, more bytes than the rest of the decoder): the joint scores the next ``window`` frames
    of each stream against its current prediction output in one call; the first non-blank frame
    emits, the prediction net advances, and the window restarts at that frame."""
    blank = model.config.blank_id
    max_symbols = model.config.max_symbols_per_step
    b, t_max, _ = enc.shape
    out = [Emissions() for _ in range(b)]
    dev = enc.device
    window = max(1, min(8, t_max, JOINT_ROWS // max(1, b)))
    ahead = torch.arange(window, device=dev)
    pos = torch.zeros(b, dtype=torch.long, device=dev)  # next frame to score, per stream
    sym = torch.zeros(b, dtype=torch.long, device=dev)  # symbols emitted at frame ``pos``
    valid = valid.to(dev)
    offsets = frame_offset.tolist()
    rows = torch.nonzero(pos < valid)[:, 0]
    while len(rows):
        frames = pos[rows, None] + ahead  # (R, W)
        inside = frames < valid[rows, None]
        logits = model.joint(enc[rows[:, None], frames.clamp(max=t_max - 1)], state.pred[rows][:, None, :])
        best = logits.argmax(dim=-1)  # (R, W)
        hit = (best != blank) & inside
        first = torch.where(hit.any(dim=1), hit.float().argmax(dim=1), torch.full_like(rows, window))
        emit = first < window
        quiet = rows[~emit]  # no symbol in the window: move past it
        pos[quiet] += window
        sym[quiet] = 0
        if bool(emit.any()):
            er, f = rows[emit], first[emit]
            lg = logits[emit, f]  # (E, V)
            k = best[emit, f]
            if boost is not None:
                sub = boost.select(er)
                k = boosted_labels(lg, sub, k, lg.gather(1, k[:, None])[:, 0])[0]
                advance(sub, k, torch.ones_like(k, dtype=torch.bool))
                boost.node.index_copy_(0, er, sub.node)
            probs = torch.softmax(lg.float(), dim=-1).gather(1, k[:, None])[:, 0]
            frame = pos[er] + f
            sym[er] = torch.where(f > 0, 0, sym[er]) + 1
            for r, t, tok, p in zip(er.tolist(), frame.tolist(), k.tolist(), probs.tolist()):
                out[r].token_ids.append(tok)
                out[r].frames.append(offsets[r] + t)
                out[r].probs.append(p)
            done = sym[er] >= max_symbols  # max symbols on this frame: go on with the next
            pos[er] = frame + done.long()
            sym[er] = torch.where(done, 0, sym[er])
            pred, h, c = model.decoder(k, state.h[:, er], state.c[:, er])
            state.pred[er] = pred
            state.h[:, er] = h
            state.c[:, er] = c
        rows = rows[pos[rows] < valid[rows]]
    return out
