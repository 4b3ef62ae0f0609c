"""CUDA graphs of the step body: captured per (arena, chunk frames, bucket) after warm-up, replayed.

A steady-state step (no final row, no first chunk) of a shape seen ``warmup`` times is captured once into static
input tensors, static label buffers and the arena's own state tensors, then replayed with the next
batches copied into those inputs: one launch instead of ~1.5k small kernels. Final and flush
chunks, first chunks, first sightings of a shape and batches of a bucket that is not configured run eagerly.
At most ``max_graphs`` graphs are kept (least recently used dropped); a grown arena (new
``generation``, new addresses) drops its old graphs, a collected arena all of them (before its
``id`` can name another arena).

The capture call itself needs a GPU; everything it captures (``step_body`` with the label-looping
decoder at ``sync_every=0``) is proven free of host reads and foreign-device tensors on the
``meta`` device by tests/test_step_meta.py.
"""

from __future__ import annotations

import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass

import torch

from ..decoding.beam import beam_capacity
from ..decoding.label_looping import LabelBuffers, allocate_buffers
from ..model.asr import NemotronASR
from .arena import StateArena
from .batch import StepBatch
from .body import LABEL_LOOPING, StepOutput, step_body


@dataclass
class _Graph:
    graph: object  # torch.cuda.CUDAGraph
    inputs: StepBatch  # static inputs the graph reads
    output: StepOutput  # static outputs the graph writes


def graph_key(arena: StateArena, batch: StepBatch) -> tuple:
    return (id(arena), arena.generation, batch.frames, batch.bucket)


def static_batch(batch: StepBatch) -> StepBatch:
    """Copies of the batch tensors for a graph to read (replays copy new batches into them)."""
    return StepBatch(*(t.clone() for t in batch.tensors()), rows=batch.bucket, any_final=False, any_lead=False)


def copy_batch(into: StepBatch, batch: StepBatch) -> None:
    for dst, src in zip(into.tensors(), batch.tensors()):
        dst.copy_(src, non_blocking=True)


def graph_labels(model: NemotronASR, batch: StepBatch, arena: StateArena | None = None) -> LabelBuffers:
    """Label buffers for a graph: the label-looping bound of the step's encoder frames (beam search's,
    ``beam.beam_capacity``, on an arena with hypotheses)."""
    frames = batch.frames // model.config.encoder.subsampling_factor
    if arena is not None and arena.beam is not None:
        return allocate_buffers(batch.bucket, beam_capacity(frames, pending=arena.beam.tokens.shape[2]), 1,
                                batch.mel.device)
    return allocate_buffers(batch.bucket, frames, model.config.max_symbols_per_step, batch.mel.device)


class CudaGraphs:
    def __init__(self, model: NemotronASR, warmup: int = 2, max_graphs: int = 32,
                 buckets: tuple[int, ...] | None = None):
        self.model = model
        self.warmup = warmup
        self.max_graphs = max_graphs
        self.buckets = buckets  # the only batch sizes captured (None: any)
        self.graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        self.seen: Counter = Counter()
        self.pool = None  # one memory pool shared by every graph
        self.captures = 0  # graphs captured so far (a bound on re-captures is a test's business)
        self._arenas: set[int] = set()  # ids of live arenas with a finalizer

    def run(self, arena: StateArena, batch: StepBatch) -> StepOutput | None:
        """Replay (capturing first when due) the step of ``batch``; None: run it eagerly instead."""
        if batch.any_final or batch.any_lead or not arena.replayable or (self.buckets and batch.bucket not in self.buckets):
            return None
        if id(arena) not in self._arenas:
            self._arenas.add(id(arena))
            weakref.finalize(arena, self._forget, id(arena))
        key = graph_key(arena, batch)
        g = self.graphs.get(key)
        if g is None:
            self.seen[key] += 1
            if self.seen[key] <= self.warmup:  # eager runs first: lazily built tables exist before capture
                return None
            g = self._capture(arena, batch)
            self._keep(key, g)
        else:
            self.graphs.move_to_end(key)
        copy_batch(g.inputs, batch)
        g.graph.replay()
        return g.output

    def _forget(self, arena_id: int) -> None:
        """An arena was collected: its graphs and counts go."""
        self._arenas.discard(arena_id)
        for table in (self.graphs, self.seen):
            for key in [k for k in table if k[0] == arena_id]:
                del table[key]

    def _keep(self, key: tuple, g: _Graph) -> None:
        for old in [k for k in self.graphs if k[0] == key[0] and k[1] != key[1]]:
            del self.graphs[old]  # an older generation of the arena: its tensors are gone
        self.graphs[key] = g
        while len(self.graphs) > self.max_graphs:
            self.graphs.popitem(last=False)

    def _capture(self, arena: StateArena, batch: StepBatch) -> _Graph:  # pragma: no cover - needs a GPU
        inputs = static_batch(batch)
        labels = graph_labels(self.model, batch, arena)
        torch.cuda.synchronize()
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):  # records only: the arena is not changed here
            output = step_body(self.model, arena, inputs, LABEL_LOOPING, sync_every=0, labels=labels)
        self.captures += 1
        return _Graph(graph, inputs, output)
