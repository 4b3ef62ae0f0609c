"""CUDA-graph bookkeeping of the step, on the CPU: everything but the capture call itself.

``CudaGraphs._capture`` is replaced by a stand-in that does what a captured graph does on replay
(run the body with the label-looping decoder at ``sync_every=0`` on the graph's static inputs,
into its static outputs), so warm-up counting, eager final chunks, static input copies, output
reads, the bound on graphs and their dropping on arena growth all run here."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import torch

from onepass.engine import Engine, EngineConfig
from onepass.recognizer import Recognizer
from onepass.step import LABEL_LOOPING, ModelStep, Row, StepConfig, StepOutput, step_body
from onepass.step.graphs import CudaGraphs, _Graph, graph_labels, static_batch
from tests.engine_driver import run_random_joins
from tests.test_step_models import tiny_model


class ReplayOnCpu(CudaGraphs):
    """What a captured graph does on replay, eagerly: the body on the static inputs, results
    copied into static outputs (a real capture records the kernels without running them)."""

    def _capture(self, arena, batch):
        inputs = static_batch(batch)
        labels = graph_labels(self.model, batch)
        frames = batch.frames // self.model.config.encoder.subsampling_factor
        output = StepOutput(torch.zeros(batch.bucket, dtype=torch.long), labels, None,
                            torch.zeros(batch.bucket, frames, self.model.config.encoder.hidden_size))

        arena_ref = weakref.ref(arena)  # a real graph holds addresses, not the arena

        class Graph:
            def replay(_):
                out = step_body(self.model, arena_ref(), inputs, LABEL_LOOPING, sync_every=0, labels=labels)
                output.frames.copy_(out.frames)
                output.encoded.copy_(out.encoded)

        self.captures += 1
        return _Graph(Graph(), inputs, output)


def _graph_recognizer(asr, warmup=1, max_graphs=3) -> Recognizer:
    rec = Recognizer(asr.model, asr.tokenizer, asr.info)
    rec.configure_step(StepConfig(decoder="label_looping", sync_every=0, buckets=(1, 2, 4)))
    rec.model_step.graphs = ReplayOnCpu(asr.model, warmup=warmup, max_graphs=max_graphs)
    return rec


def test_replayed_steps_give_the_eager_tokens(asr, clips):
    rec = _graph_recognizer(asr)
    rng = np.random.default_rng(7)
    names = list(clips)
    plan = [(int(rng.integers(0, 6)), names[i % len(names)], "en-US", [80, 320, 1120][i % 3]) for i in range(6)]
    engine = Engine(rec, EngineConfig(max_batch=4, max_streams=8, endpoint_blank_ms=None))
    closed, _ = run_random_joins(engine, [(j, clips[n], lang, c) for j, n, lang, c in plan], rng, max_steps=3000)
    graphs = rec.model_step.graphs
    assert graphs.captures >= 3 and len(graphs.graphs) <= 3  # replays ran; the bound held
    assert all(a.capacity == 8 for a in engine.pools.values())  # every slot up front: no growth
    for k, (_, name, lang, chunk_ms) in enumerate(plan):
        assert closed[k].token_ids == asr.transcribe(clips[name], 16000, language=lang, chunk_ms=chunk_ms).token_ids


def test_warmup_final_chunks_and_growth():
    model = tiny_model()
    graphs = ReplayOnCpu(model, warmup=2, max_graphs=4)
    step = ModelStep(model, StepConfig(decoder="label_looping", sync_every=0, buckets=(2, 4)))
    step.graphs = graphs
    arena = step.arena(1, capacity=3, growth=2)
    slots = [arena.acquire() for _ in range(3)]
    mels = model.config.frontend.num_mel_bins
    g = torch.Generator().manual_seed(0)

    def rows(first=False, final=False):
        return [Row(s, torch.randn(9 if first else 16, mels, generator=g), 7 if first else 0, final)
                for s in slots[:3]]

    step.run_rows(arena, rows(first=True))  # first chunks run eagerly and do not count
    for _ in range(2):  # warm-up: eager
        step.run_rows(arena, rows())
    assert graphs.captures == 0
    step.run_rows(arena, rows())
    assert graphs.captures == 1 and len(graphs.graphs) == 1
    step.run_rows(arena, rows())
    assert graphs.captures == 1  # replayed, not captured again
    step.run_rows(arena, rows(final=True))  # final chunks run eagerly
    assert graphs.captures == 1
    for s in slots:
        arena.reset(s)
    step.run_rows(arena, rows(first=True))
    slots.append(arena.acquire())  # full: the arena grows, a new generation
    assert arena.generation == 1
    for _ in range(3):  # two eager warm-ups of the new generation's shape, then its capture
        step.run_rows(arena, rows())
    assert graphs.captures == 2 and len(graphs.graphs) == 1  # the old generation's graph is gone
    five = step.batch(arena, [Row(s, torch.randn(16, mels, generator=g), 0, False) for s in range(1, 6)])
    assert five.bucket == 5 and graphs.run(arena, five) is None  # no such bucket: eager, never captured
    other = step.arena(1, capacity=1, replayable=False)
    slot = other.acquire()
    for _ in range(4):
        step.run_rows(other, [Row(slot, torch.randn(16, mels, generator=g), 0, False)])
    assert graphs.captures == 2  # an arena of one offline call is never captured
    del arena
    gc.collect()
    assert not graphs.graphs and not graphs.seen  # a collected arena's graphs go before its id is reused
