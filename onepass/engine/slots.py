"""Preallocated per-stream model state (encoder caches, subsampling and decoder state).

One pool per chunk size. Rows are slots; a step gathers the rows of the scheduled streams,
runs them as a batch and scatters the new state back. Pools grow in blocks and slots are
reused after release, so opening and closing streams does not allocate in steady state.

When a step runs the same slots in the same order as the step before (every busy stream ready
each step: the case that decides capacity), the batch state stays as it is ("resident"): no
gather, no scatter. The caches are most of the state (13 MB per stream at real size), so this
saves two copies of them per step. Anything else (another batch, acquire, release) first writes
the resident batch back.
"""

from __future__ import annotations

import torch

from ..decoding.greedy import DecoderState, initial_decoder_state
from ..model.asr import NemotronASR
from ..model.encoder import EncoderState
from ..model.subsampling import SubsamplingState


def _enc_fields(state: EncoderState):
    """(tensor, batch dim) pairs of an encoder state, in a fixed order."""
    sub = state.subsampling
    return ([(state.keys, 1), (state.values, 1), (state.conv, 1), (state.cache_len, 0), (state.frames, 0)]
            + [(t, 0) for t in sub.pending] + [(t, 0) for t in sub.frames_in] + [(t, 0) for t in sub.frames_out])


def _enc_from(fields: list[torch.Tensor], stages: int) -> EncoderState:
    k, v, conv, cache_len, frames = fields[:5]
    rest = fields[5:]
    sub = SubsamplingState(rest[:stages], rest[stages:2 * stages], rest[2 * stages:])
    return EncoderState(sub, k, v, conv, cache_len, frames)


def _dec_fields(state: DecoderState):
    return [(state.h, 1), (state.c, 1), (state.pred, 0)]


class SlotPool:
    def __init__(self, model: NemotronASR, right_context: int, growth: int = 8):
        self.model = model
        self.right_context = right_context
        self.growth = growth
        self.stages = model.config.encoder.subsampling_layers
        self.capacity = 0
        self.free: list[int] = []
        self.enc: EncoderState | None = None
        self.dec: DecoderState | None = None
        self._resident: tuple[list[int], torch.Tensor, EncoderState, DecoderState] | None = None
        with torch.no_grad():
            self._enc0 = model.encoder.initial_state(1, aligned=True)
            self._dec0 = initial_decoder_state(model, 1)

    @property
    def in_use(self) -> int:
        return self.capacity - len(self.free)

    def acquire(self) -> int:
        self.flush()
        if not self.free:
            self._grow()
        slot = self.free.pop()
        self._write(torch.tensor([slot], device=self._enc0.frames.device), self._enc0, self._dec0)
        return slot

    def release(self, slot: int) -> None:
        self.flush()
        self.free.append(slot)

    def flush(self) -> None:
        """Write the resident batch (if any) back to its slots."""
        if self._resident is not None:
            _, slots, enc, dec = self._resident
            self._resident = None
            self._write(slots, enc, dec)

    def _grow(self) -> None:
        n = self.growth
        with torch.no_grad():
            enc = self.model.encoder.initial_state(n, aligned=True)
            dec = initial_decoder_state(self.model, n)
        if self.enc is None:
            self.enc, self.dec = enc, dec
        else:
            self.enc = _enc_from([torch.cat([a, b], dim=d) for (a, d), (b, _) in
                                  zip(_enc_fields(self.enc), _enc_fields(enc))], self.stages)
            self.dec = DecoderState(*[torch.cat([a, b], dim=d) for (a, d), (b, _) in
                                      zip(_dec_fields(self.dec), _dec_fields(dec))])
        self.free.extend(range(self.capacity + n - 1, self.capacity - 1, -1))
        self.capacity += n

    def gather(self, slots: torch.Tensor) -> tuple[EncoderState, DecoderState]:
        if self._resident is not None and self._resident[0] == slots.tolist():
            _, _, enc, dec = self._resident
            self._resident = None  # the caller owns it until scatter
            return enc, dec
        self.flush()
        enc = _enc_from([t.index_select(d, slots) for t, d in _enc_fields(self.enc)], self.stages)
        dec = DecoderState(*[t.index_select(d, slots) for t, d in _dec_fields(self.dec)])
        return enc, dec

    def scatter(self, slots: torch.Tensor, enc: EncoderState, dec: DecoderState) -> None:
        """The new state of the gathered slots; kept resident until another batch needs the pool."""
        self.flush()
        self._resident = (slots.tolist(), slots, enc, dec)

    def _write(self, slots, enc: EncoderState, dec: DecoderState) -> None:
        for (dst, d), (src, _) in zip(_enc_fields(self.enc), _enc_fields(enc)):
            dst.index_copy_(d, slots, src)
        for (dst, d), (src, _) in zip(_dec_fields(self.dec), _dec_fields(dec)):
            dst.index_copy_(d, slots, src)
