"""Greedy RNN-T by label looping, with no host reads: every row of the batch advances together.

Same rule as ``greedy.greedy_decode``: at the current frame of a row, the joint scores (frame,
last prediction output); blank moves the row to the next frame; any other label (``torch.argmax``,
so ties go to the lowest id) is emitted, the prediction net advances on it, and after
``max_symbols_per_step`` labels on one frame the row moves on to the next frame anyway.

Here one iteration does that for every row at once: rows that are finished (``pos >= valid``,
padding rows with ``valid == 0`` from the start) or that do not emit are masked, never removed,
and results go into fixed-size device buffers, so no shape depends on data (the idea of NeMo's
label-looping decoder, PR 8531). An iteration either moves a row one frame on or emits a label,
and a row emits at most ``max_symbols`` labels per frame, the last of which moves it on; so
``frames * max_symbols`` iterations finish every row. That fixed bound runs with zero host reads
(``sync_every=0``: capturable in a CUDA graph); ``sync_every=K`` reads one 0-dim "any row
active" flag before each block of K iterations and stops early (the right choice on the CPU,
where a read costs nothing and every iteration reads the joint's and the LSTM's weights).

``emissions_from_buffers`` turns the buffers into ``greedy.Emissions`` with one copy to the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.asr import NemotronASR
from .boosting import BoostRows, advance, boosted_labels
from .greedy import DecoderState, Emissions


@dataclass
class LabelBuffers:
    """Labels emitted by one decoding call, per row; entries at or past ``counts`` are unused."""

    token_ids: torch.Tensor  # (B, capacity) int64 emitted label ids
    frames: torch.Tensor  # (B, capacity) int64 absolute encoder frame of each label
    probs: torch.Tensor  # (B, capacity) float32 softmax probability of each label
    counts: torch.Tensor  # (B,) int64 labels written per row

    @property
    def capacity(self) -> int:
        return self.token_ids.shape[1]


def buffer_capacity(frames: int, max_symbols: int) -> int:
    """Labels one row can emit over ``frames`` encoder frames (also the fixed iteration bound)."""
    return frames * max(1, max_symbols)


def allocate_buffers(batch: int, frames: int, max_symbols: int, device: torch.device | str) -> LabelBuffers:
    """Zeroed buffers for ``batch`` rows of ``frames`` encoder frames."""
    cap = buffer_capacity(frames, max_symbols)
    return LabelBuffers(torch.zeros(batch, cap, dtype=torch.long, device=device),
                        torch.zeros(batch, cap, dtype=torch.long, device=device),
                        torch.zeros(batch, cap, dtype=torch.float32, device=device),
                        torch.zeros(batch, dtype=torch.long, device=device))


def ready_buffers(out: LabelBuffers | None, rows: int, capacity: int, device: torch.device | str) -> LabelBuffers:
    """``out`` checked (``rows`` rows of at least ``capacity`` labels) and zeroed; new zeroed buffers for None."""
    if out is None:
        return allocate_buffers(rows, capacity, 1, device)
    if out.capacity < capacity or out.counts.shape[0] != rows:
        raise ValueError(f"buffers hold {out.counts.shape[0]} rows x {out.capacity} labels; "
                         f"this call needs {rows} x {capacity}")
    for buf in (out.token_ids, out.frames, out.probs, out.counts):
        buf.zero_()
    return out


@torch.no_grad()
def label_looping_decode(model: NemotronASR, enc: torch.Tensor, valid: torch.Tensor, state: DecoderState,
                         frame_offset: torch.Tensor, *, sync_every: int = 0,
                         out: LabelBuffers | None = None, boost: BoostRows | None = None) -> LabelBuffers:
    """enc (B, T, pred_hidden) projected encoder frames; valid (B,) frames per row (clamped to T);
    frame_offset (B,) absolute index of enc[:, 0]. Updates ``state`` in place (masked writes: a
    row that emits nothing, a padding row with ``valid == 0`` included, keeps its state bit for bit).

    ``sync_every``: 0 runs the fixed bound of T * max_symbols iterations with no host read; K > 0
    reads one 0-dim flag before each block of K iterations and stops once no row is active.
    ``out``: buffers to fill (capacity at least ``buffer_capacity(T, max_symbols)``), zeroed first;
    allocated when None. ``boost``: phrase boosting of the rows, as in ``greedy.greedy_decode`` (its
    ``node`` updated in place, with masked writes). Returns the buffers. For CUDA-graph capture
    pass ``valid`` and ``frame_offset`` on enc's device already (a host-to-device copy cannot be
    captured)."""
    b, t_max, _ = enc.shape
    dev = enc.device
    max_symbols = max(1, model.config.max_symbols_per_step)
    bound = buffer_capacity(t_max, max_symbols)
    out = ready_buffers(out, b, bound, dev)
    if t_max == 0:
        return out
    valid = valid.to(dev).clamp(max=t_max)
    offset = frame_offset.to(dev)
    pos = torch.zeros(b, dtype=torch.long, device=dev)  # current frame of each row
    sym = torch.zeros(b, dtype=torch.long, device=dev)  # labels emitted at that frame so far
    done = 0
    while done < bound:
        if sync_every > 0 and not bool((pos < valid).any()):
            break
        for _ in range(min(sync_every, bound - done) if sync_every > 0 else bound):
            pos, sym = _iteration(model, enc, valid, state, offset, pos, sym, out, max_symbols, boost)
            done += 1
    return out


def _iteration(model: NemotronASR, enc: torch.Tensor, valid: torch.Tensor, state: DecoderState,
               offset: torch.Tensor, pos: torch.Tensor, sym: torch.Tensor, out: LabelBuffers,
               max_symbols: int, boost: BoostRows | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One label step of every row; returns the new (pos, sym)."""
    b, t_max, hidden = enc.shape
    active = pos < valid
    at = pos.clamp(max=t_max - 1).view(b, 1, 1).expand(b, 1, hidden)
    logits = model.joint(torch.gather(enc, 1, at)[:, 0], state.pred).float()  # (B, V)
    # max's index is torch.argmax's (the first maximum); softmax at the maximum is 1 / sum(exp(x - max))
    top, label = logits.max(dim=-1)
    emit = active & (label != model.config.blank_id)
    prob = torch.exp(logits - top[:, None]).sum(dim=-1).reciprocal()
    if boost is not None:  # the model decides blank or not; the bonus, which label
        boosted, boosted_logit = boosted_labels(logits, boost, label, top)
        keep = label == model.config.blank_id
        label = torch.where(keep, label, boosted)
        prob = prob * torch.exp(torch.where(keep, top, boosted_logit) - top)  # exp(0) = 1 at the maximum
        advance(boost, label, emit)

    # A row that emits nothing writes back what its next slot held; a full row never emits, but
    # its slot index is clamped so that the write stays inside the buffer.
    slot = out.counts.clamp(max=out.capacity - 1)[:, None]
    for buf, value in ((out.token_ids, label), (out.frames, offset + pos), (out.probs, prob)):
        buf.scatter_(1, slot, torch.where(emit, value.to(buf.dtype), buf.gather(1, slot)[:, 0])[:, None])
    out.counts.add_(emit.long())

    sym = torch.where(emit, sym + 1, 0)
    full = sym >= max_symbols
    pos = pos + (active & (~emit | full)).long()  # blank, or max labels on this frame: next frame
    sym = torch.where(full, 0, sym)

    # The prediction net runs on every row (the label of a non-emitting row is a valid id too);
    # only emitting rows keep the result.
    pred, h, c = model.decoder(label, state.h, state.c)
    state.pred.copy_(torch.where(emit[:, None], pred, state.pred))
    state.h.copy_(torch.where(emit[None, :, None], h, state.h))
    state.c.copy_(torch.where(emit[None, :, None], c, state.c))
    return pos, sym


def emissions_from_buffers(buffers: LabelBuffers) -> list[Emissions]:
    """Host-side: per-row ``Emissions``, after one wait for the device (the four buffers are
    copied without blocking, then read)."""
    parts = (buffers.counts, buffers.token_ids, buffers.frames, buffers.probs)
    host = [t.to("cpu", non_blocking=True) for t in parts]
    if buffers.counts.device.type == "cuda":
        torch.cuda.current_stream(buffers.counts.device).synchronize()
    counts, ids, frames, probs = (t.tolist() for t in host)
    return [Emissions(ids[r][:k], frames[r][:k], probs[r][:k]) for r, k in enumerate(counts)]
