"""``ModelStep``: runs the step body for any caller, eagerly or as a replayed CUDA graph."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import OnePassError
from ..model.asr import NemotronASR
from .arena import StateArena
from .batch import Row, StepBatch, bucket_size, make_batch, mel_frames
from .body import LABEL_LOOPING, WINDOWED, StepResult, read_output, step_body
from .graphs import CudaGraphs

MAX_BEAM = 16


def check_beam(beam: int) -> int:
    """A beam size (hypotheses per stream) or OnePassError."""
    if not 1 <= beam <= MAX_BEAM:
        raise OnePassError(f"beam size must be 1 to {MAX_BEAM}, got {beam}")
    return beam


GPU_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class StepConfig:
    decoder: str = "auto"  # "windowed" (greedy_decode, host reads: fastest on the CPU), "label_looping",
    # or "auto": windowed on the CPU, label looping elsewhere
    sync_every: int = 1  # eager label looping: read one "any row active" flag every K iterations (0: fixed bound)
    buckets: tuple[int, ...] | None = None  # batch sizes steps are padded to (None: none on the CPU, where
    # padding rows cost compute; GPU_BUCKETS elsewhere)
    cuda_graphs: bool = False  # capture steady-state steps and replay them (CUDA devices only)
    graph_warmup: int = 2  # eager runs of a (chunk size, bucket) before it is captured
    max_graphs: int = 32  # captured graphs kept at once
    beam: int = 1  # hypotheses per stream: 1, greedy decoding (NeMo's; the decoder above); more, beam search
    # (``decoding.beam``: better with phrase boosting; captured as graphs like label looping)


class ModelStep:
    """The one path into the model for a batch of streams (see ``onepass.step``)."""

    def __init__(self, model: NemotronASR, config: StepConfig | None = None):
        self.model = model
        self.config = config = config or StepConfig()
        p = model.joint.head.weight
        self.device, self.dtype = p.device, model.encoder_dtype  # the features' dtype
        on_cpu = self.device.type == "cpu"
        if config.decoder not in ("auto", WINDOWED, LABEL_LOOPING):
            raise ValueError(f"unknown decoder {config.decoder!r}")
        check_beam(config.beam)
        self.decoder = config.decoder if config.decoder != "auto" else (WINDOWED if on_cpu else LABEL_LOOPING)
        self.buckets = config.buckets if config.buckets is not None else (None if on_cpu else GPU_BUCKETS)
        self.graphs = (CudaGraphs(model, config.graph_warmup, config.max_graphs, self.buckets)
                       if config.cuda_graphs and self.device.type == "cuda" else None)
        self.factor = model.config.encoder.subsampling_factor
        self.mels = model.config.frontend.num_mel_bins

    def arena(self, right_context: int, capacity: int = 8, growth: int = 8, replayable: bool = True) -> StateArena:
        return StateArena(self.model, right_context, capacity, growth, replayable, self.config.beam)

    def frames(self, right_context: int, chunks: int = 1) -> int:
        """Mel frames per row of a step of ``chunks`` chunks (the first chunk's lead included)."""
        return mel_frames(False, right_context, self.factor, chunks)

    def first_lead(self) -> int:
        return self.model.encoder.subsampling.first_chunk_lead

    def batch(self, arena: StateArena, rows: list[Row], chunks: int = 1) -> StepBatch:
        """Rows padded to their bucket, on the device."""
        return make_batch(rows, self.frames(arena.right_context, chunks), bucket_size(len(rows), self.buckets),
                          self.mels, self.device, self.dtype, self.model.frontend)

    @torch.no_grad()
    def run(self, arena: StateArena, batch: StepBatch) -> StepResult:
        """One step; the result holds the real rows only. A grown arena's old graphs are dropped."""
        out = None
        if self.graphs is not None and self.decoder == LABEL_LOOPING:
            out = self.graphs.run(arena, batch)
        if out is None:
            out = step_body(self.model, arena, batch, self.decoder, self.config.sync_every)
        arena.last_slots = batch.slot_ids
        return read_output(out, batch.rows)

    def run_rows(self, arena: StateArena, rows: list[Row], chunks: int = 1) -> StepResult:
        return self.run(arena, self.batch(arena, rows, chunks))
