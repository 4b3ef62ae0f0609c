"""The step body: features -> encoder (state arena updated in place) -> RNN-T decoding -> labels.

``step_body`` is the only code that runs the model on streams; offline transcription, the
engine (and through it ``StreamingSession`` and the server) and the benchmarks all call it
through ``ModelStep``. With the label-looping decoder and ``sync_every=0`` it reads nothing back
to the host and makes no tensor whose shape depends on data, so it runs on torch's ``meta``
device and can be captured in a CUDA graph. ``read_output`` is the one host read after it.

The eager CPU step decodes with the windowed ``greedy_decode`` instead (same labels): measured
1.4-1.5x faster there than label looping with one flag read per iteration and 2-7x faster than the
fixed bound (``python -m onepass.bench.decoders``), and on the CPU a host read costs nothing.
An arena made for beam search (``StepConfig.beam`` > 1) decodes with ``beam.beam_decode`` instead, into
the same label buffers (with ``sync_every=0`` no host read either; eager steps let it end a frame's
rounds early).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..decoding.beam import beam_decode
from ..decoding.greedy import Emissions, greedy_decode
from ..decoding.label_looping import LabelBuffers, label_looping_decode
from ..model.asr import NemotronASR
from ..model.rows import take
from .arena import StateArena
from .batch import StepBatch

WINDOWED = "windowed"  # greedy.greedy_decode: compacts rows, host reads per iteration (fastest on the CPU)
LABEL_LOOPING = "label_looping"  # label_looping.label_looping_decode: masked rows, fixed-size buffers


@dataclass
class StepOutput:
    """What the body returns (device side; the windowed decoder's labels are already on the host)."""

    frames: torch.Tensor  # (bucket,) int64 encoder frames decoded per row (0 for padding rows)
    labels: LabelBuffers | None  # label looping: token ids, frames, probabilities, counts per row
    emissions: list[Emissions] | None  # windowed decoder: per row
    encoded: torch.Tensor  # (bucket, T', D) encoder output after the prompt MLP


@dataclass
class StepResult:
    """Host side of one step, for the real rows only."""

    emissions: list[Emissions]  # labels per row (absolute encoder frames)
    frames: list[int]  # encoder frames decoded per row
    encoded: torch.Tensor  # (bucket, T', D) device tensor (a captured graph's output is overwritten by its next replay)


def step_body(model: NemotronASR, arena: StateArena, batch: StepBatch, decoder: str = LABEL_LOOPING,
              sync_every: int = 0, labels: LabelBuffers | None = None) -> StepOutput:
    """One step of ``batch`` on ``arena``: updates the rows ``batch.slots`` in place (padding rows
    write only the scratch row). ``labels``: output buffers to fill (a captured graph's own)."""
    slots = batch.row_range if batch.row_range is not None else batch.slots
    live = batch.slots != arena.scratch
    offsets = take(arena.encoder.frames, slots) + batch.frame_offset
    prompt = batch.prompt if model.config.has_prompt else None
    # steady: every row a whole chunk of frames from its first (padding rows: of zeros), known on the
    # host; the encoder then slices instead of masking and gathering (same result, cheaper)
    steady = not batch.any_final and not batch.any_lead
    enc, proj, n = model.encode(batch.mel, batch.valid, batch.final, arena.encoder, arena.right_context,
                                prompt, batch.lead, slots, steady)
    n = torch.where(live, n, torch.zeros_like(n))
    boost = arena.boost_rows(slots)  # None while no stream of the arena has phrases
    if arena.beam is not None:  # beam search: the arena's hypotheses (the greedy state is not used)
        hyps, labels = beam_decode(model, proj, n, arena.beam_rows(slots), offsets, batch.final, boost,
                                   host_reads=decoder == WINDOWED or sync_every > 0, out=labels)
        arena.write_beam(slots, hyps)
        return StepOutput(n, labels, None, enc)
    dec = arena.decoder_rows(slots)
    emissions = None
    if decoder == WINDOWED:
        emissions = greedy_decode(model, proj, n, dec, offsets, boost)
    else:
        labels = label_looping_decode(model, proj, n, dec, offsets, sync_every=sync_every, out=labels, boost=boost)
    arena.write_decoder(slots, dec)
    arena.write_boost(slots, boost)
    return StepOutput(n, labels if decoder != WINDOWED else None, emissions, enc)


def read_output(out: StepOutput, rows: int) -> StepResult:
    """The host read after a step: one wait for the device, then lists for the ``rows`` real rows."""
    if out.labels is None:
        return StepResult(out.emissions[:rows], out.frames[:rows].tolist(), out.encoded)
    lab = out.labels
    parts = [t[:rows].to("cpu", non_blocking=True)
             for t in (out.frames, lab.counts, lab.token_ids, lab.frames, lab.probs)]
    if out.frames.device.type == "cuda":
        torch.cuda.current_stream(out.frames.device).synchronize()
    frames, counts, ids, at, probs = (t.tolist() for t in parts)
    emissions = [Emissions(ids[r][:k], at[r][:k], probs[r][:k]) for r, k in enumerate(counts)]
    return StepResult(emissions, frames, out.encoded)
