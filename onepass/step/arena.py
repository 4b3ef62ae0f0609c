"""Per chunk size: the model state of every stream, preallocated, one row per slot.

Row 0 is the scratch slot: padding rows of a bucketed batch read and write it, so a step never
needs a data-dependent shape and never touches another stream's row. Rows 1..capacity belong
to streams. A step reads the rows of its slots and writes the new state back into the same
rows in place (``index_copy_``), layer by layer: no per-step gather of the whole state, no
growth by ``torch.cat``. The arena grows only when every slot is taken, in blocks; that
allocates new tensors (new addresses), so ``generation`` changes and captured CUDA graphs of
the old generation are dropped (``onepass.step.graphs``). Size it with ``capacity`` up front
where graphs matter.
"""

from __future__ import annotations

import torch

from ..decoding.beam import BeamState, initial_beam_state
from ..decoding.boosting import BoostPool, BoostRows
from ..decoding.greedy import DecoderState, initial_decoder_state
from ..model.asr import NemotronASR
from ..model.encoder import EncoderState
from ..model.rows import Rows, put, take

SCRATCH = 0  # the padding row


def _fields(enc: EncoderState, dec: DecoderState, beam: BeamState | None) -> list[tuple[torch.Tensor, int]]:
    """(tensor, slot dim) of every state tensor, in a fixed order: the one place that knows the layout."""
    sub = enc.subsampling
    return ([(enc.keys, 1), (enc.values, 1), (enc.conv, 1), (enc.cache_len, 0), (enc.frames, 0)]
            + [(t, 0) for t in sub.pending + sub.frames_in + sub.frames_out]
            + [(dec.h, 1), (dec.c, 1), (dec.pred, 0)] + (beam.slot_fields() if beam is not None else []))


@torch.no_grad()
def _initial(model: NemotronASR, rows: int, beam: int) -> tuple[EncoderState, DecoderState, BeamState | None]:
    return (model.encoder.initial_state(rows, aligned=True), initial_decoder_state(model, rows),
            initial_beam_state(model, rows, beam) if beam > 1 else None)


class StateArena:
    """Encoder caches (K/V, conv, subsampling pending frames, cache lengths, frame counters) and
    prediction-net state (h, c, last prediction output) of up to ``capacity`` streams of one
    right context, plus the scratch row; with ``beam`` > 1, each stream's beam-search hypotheses
    (``decoding.beam``) too."""

    def __init__(self, model: NemotronASR, right_context: int, capacity: int = 8, growth: int = 8,
                 replayable: bool = True, beam: int = 1):
        self.model = model
        self.replayable = replayable  # steps on it may be captured as CUDA graphs (False: short-lived arenas)
        self.right_context = right_context
        self.growth = max(1, growth)
        self.stages = model.config.encoder.subsampling_layers
        self.capacity = max(1, capacity)
        self.generation = 0  # bumped when the tensors are reallocated
        self.encoder, self.decoder, self.beam = _initial(model, self.capacity + 1, beam)
        self._row0 = _initial(model, 1, beam)
        # phrase boosting: every stream's prefix tree and each slot's place in it (a realloc, or boosting
        # switched on or off, changes what a captured step reads: a new generation)
        self.boost = BoostPool(self.capacity + 1, model.config.blank_id, self.encoder.frames.device,
                               on_realloc=self._new_generation)
        self.free = list(range(self.capacity, 0, -1))  # pop() gives the lowest free slot
        self.last_slots: tuple[int, ...] | None = None  # slots of the last step run on this arena

    def _new_generation(self) -> None:
        self.generation += 1

    @property
    def scratch(self) -> int:
        return SCRATCH

    @property
    def in_use(self) -> int:
        return self.capacity - len(self.free)

    @property
    def _resident(self) -> tuple[int, ...] | None:
        """The batch whose state is in place (every batch is, here: there is no write-back)."""
        return self.last_slots

    def acquire(self) -> int:
        """A free slot, reset to the initial state (grows the arena when none is free)."""
        if not self.free:
            self.grow(self.capacity + self.growth)
        slot = self.free.pop()
        self.reset(slot)
        return slot

    def release(self, slot: int) -> None:
        if not 1 <= slot <= self.capacity or slot in self.free:
            raise ValueError(f"slot {slot} is not in use")
        self.free.append(slot)
        self.free.sort(reverse=True)  # lowest first: busy slots stay packed at the front

    def reset(self, slot: int) -> None:
        """Initial state (a stream's first chunk) in row ``slot``."""
        index = torch.tensor([slot], device=self.encoder.frames.device)
        for (dst, dim), (src, _) in zip(self.fields(), _fields(*self._row0)):
            dst.index_copy_(dim, index, src)
        self.attach_boost(slot, None)

    def fields(self) -> list[tuple[torch.Tensor, int]]:
        return _fields(self.encoder, self.decoder, self.beam)

    def grow(self, capacity: int) -> None:
        """Reallocate for ``capacity`` streams, keeping every row (new addresses: a new generation)."""
        if capacity <= self.capacity:
            return
        fresh_state = _initial(self.model, capacity + 1, self.beam.score.shape[1] if self.beam is not None else 1)
        fresh = _fields(*fresh_state)
        for (dst, dim), (src, _) in zip(fresh, self.fields()):
            dst.narrow(dim, 0, src.shape[dim]).copy_(src)
        self.encoder, self.decoder, self.beam = fresh_state
        self.free = sorted(self.free + list(range(self.capacity + 1, capacity + 1)), reverse=True)
        self.capacity = capacity
        self.boost.grow_rows(capacity + 1)  # does not notify: one reallocation, one new generation
        self.generation += 1

    def decoder_rows(self, slots: Rows) -> DecoderState:
        """The prediction-net state of ``slots``: views for a slice; for an index tensor a working
        copy for one decoding call (a few KB per row, updated many times per step) that
        ``write_decoder`` puts back."""
        d = self.decoder
        return DecoderState(take(d.h, slots, 1), take(d.c, slots, 1), take(d.pred, slots))

    def write_decoder(self, slots: Rows, state: DecoderState) -> None:
        if isinstance(slots, slice):
            return  # the decoder wrote through the views
        d = self.decoder
        put(d.h, slots, state.h, 1)
        put(d.c, slots, state.c, 1)
        put(d.pred, slots, state.pred)

    def beam_rows(self, slots: Rows) -> BeamState:
        """The hypotheses of ``slots`` for one decoding call (views for a slice, else copies: ``beam_decode``
        writes none of its inputs; ``write_beam`` puts the new state back)."""
        return BeamState(*[take(t, slots, dim) for t, dim in self.beam.slot_fields()])

    def write_beam(self, slots: Rows, state: BeamState) -> None:
        for (dst, dim), (src, _) in zip(self.beam.slot_fields(), state.slot_fields()):
            put(dst, slots, src, dim)

    def attach_boost(self, slot: int, handle: int | None) -> None:
        """Slot ``slot`` decodes with the pool's tree ``handle`` (None: no phrases) from its root on:
        the greedy state's node and every beam hypothesis' node go to the root."""
        self.boost.attach(slot, handle)
        if self.beam is not None:
            self.beam.node[slot] = 0

    def boost_rows(self, slots: Rows) -> BoostRows | None:
        """The boosting rows of ``slots`` for one decoding call (None while no stream has phrases)."""
        return self.boost.rows(slots) if self.boost.active else None

    def write_boost(self, slots: Rows, rows: BoostRows | None) -> None:
        if rows is not None:
            self.boost.write(slots, rows)

    def state_bytes_per_stream(self) -> int:
        return sum(t.numel() // t.shape[d] * t.element_size() for t, d in self.fields())
