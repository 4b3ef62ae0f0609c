"""The model step (``onepass.step``): graph replay == eager per bucket, step time per bucket, state
memory per stream.

Everything that knows the step API is in this file, so a change of that API is one edit here.
On a CUDA device the "graph" side is ``ModelStep`` with ``cuda_graphs=True`` (captured after its
warm-up, then replayed; the check asserts captures happened). Without CUDA (the rehearsal) it is
what the graph records, run by hand: the label-looping body with ``sync_every=0`` on static input
tensors that every step is copied into, and preallocated label buffers.
"""

from __future__ import annotations

import statistics
import time

import torch

from report import Unavailable


def step_api():
    """The ``onepass.step`` names this check uses, or Unavailable saying which are missing."""
    try:
        from onepass.step import graphs, runner
        from onepass.step.batch import Row
        from onepass.step.body import LABEL_LOOPING, read_output, step_body
    except ImportError as exc:
        raise Unavailable(f"onepass.step is not importable in this checkout ({exc})") from None
    needed = [(runner, "ModelStep"), (runner, "StepConfig"), (runner, "GPU_BUCKETS"), (graphs, "static_batch"),
              (graphs, "copy_batch"), (graphs, "graph_labels")]
    missing = [f"{m.__name__}.{n}" for m, n in needed if not hasattr(m, n)]
    if missing:
        raise Unavailable(f"onepass.step lacks {', '.join(missing)}")
    return runner, graphs, Row, LABEL_LOOPING, step_body, read_output


class Stepper:
    """One chunk size of one model: an arena of ``capacity`` streams, eager and graph steps on it."""

    def __init__(self, asr, chunk_ms: int, capacity: int, graph: bool, seed: int = 0, share: Stepper | None = None,
                 beam: int = 1):
        """``share``: run on that stepper's arena and slots (graphs are keyed by arena, so each
        stepper still captures its own). ``beam`` > 1: beam search."""
        runner, graphs, Row, LABEL_LOOPING, step_body, read_output = step_api()
        self._graphs, self._Row, self._body, self._read = graphs, Row, step_body, read_output
        self._LL = LABEL_LOOPING
        self.model = asr.model
        self.beam = beam
        self.r = asr.config.right_context_for_chunk_ms(chunk_ms)
        self.cuda = asr.device.type == "cuda"
        self.graph = graph
        cfg = runner.StepConfig(decoder=LABEL_LOOPING, buckets=runner.GPU_BUCKETS,
                                cuda_graphs=graph and self.cuda, graph_warmup=2, max_graphs=64,
                                **({"beam": beam} if beam > 1 else {}))
        self.step = runner.ModelStep(self.model, cfg)
        if share is not None:
            self.arena, self.slots = share.arena, share.slots
        else:
            self.arena = self.step.arena(self.r, capacity=capacity)
            self.slots = [self.arena.acquire() for _ in range(capacity)]
        self.frames = self.step.frames(self.r)
        self.prompt = asr.language("en-US").prompt if asr.config.has_prompt else 0
        self._static: dict[int, tuple] = {}  # bucket -> (static batch, label buffers): the rehearsal's "graph"
        self._gen = torch.Generator().manual_seed(seed)

    @property
    def mode(self) -> str:
        if not self.graph:
            return "eager"
        return "cuda graph" if self.cuda else "static buffers, sync-free body (what a graph records; no CUDA here)"

    def rows(self, n: int, mel: torch.Tensor | None = None):
        """n steady-state rows (no lead, not final) of fresh speech-scale random features."""
        if mel is None:
            mel = torch.randn(n, self.frames, self.step.mels, generator=self._gen)
        return [self._Row(slot=s, mel=mel[i], lead=0, final=False, prompt=self.prompt)
                for i, s in enumerate(self.slots[:n])]

    def run(self, rows):
        batch = self.step.batch(self.arena, rows)
        if not self.graph or self.cuda:
            return self.step.run(self.arena, batch)
        static = self._static.get(batch.bucket)
        if static is None:
            labels = (self._graphs.graph_labels(self.model, batch, self.arena) if self.beam > 1
                      else self._graphs.graph_labels(self.model, batch))
            static = self._static[batch.bucket] = (self._graphs.static_batch(batch), labels)
        self._graphs.copy_batch(static[0], batch)
        with torch.no_grad():
            out = self._body(self.model, self.arena, static[0], self._LL, sync_every=0, labels=static[1])
        return self._read(out, batch.rows)

    @property
    def captures(self) -> int | None:
        g = self.step.graphs
        return None if g is None else g.captures

    def state(self) -> list[torch.Tensor]:
        return [t for t, _ in self.arena.fields()]


def graph_equality(asr, chunk_ms: int, bucket: int, steps: int, seed: int, beam: int = 1) -> dict:
    """The same batches through an eager and a graph stepper on fresh arenas: every step's labels,
    frames and encoder output, and the stream rows of the state, must be ``torch.equal``."""
    rows = max(1, bucket - bucket // 4)  # a padded bucket from 4 up: padding rows must not leak
    eager = Stepper(asr, chunk_ms, rows, graph=False, seed=seed, beam=beam)
    graph = Stepper(asr, chunk_ms, rows, graph=True, seed=seed, beam=beam)
    gen = torch.Generator().manual_seed(seed + 7)
    diffs: dict[str, int] = {"labels": 0, "frames": 0, "encoded": 0}
    for _ in range(steps):
        mel = torch.randn(rows, eager.frames, eager.step.mels, generator=gen)
        a, b = eager.run(eager.rows(rows, mel)), graph.run(graph.rows(rows, mel))
        diffs["labels"] += [vars(e) for e in a.emissions] != [vars(e) for e in b.emissions]
        diffs["frames"] += a.frames != b.frames
        diffs["encoded"] += not torch.equal(a.encoded[:rows], b.encoded[:rows])
    state_equal = all(torch.equal(x[_rows(x, d, rows)], y[_rows(y, d, rows)])
                      for (x, d), (y, _) in zip(eager.arena.fields(), graph.arena.fields()))
    tokens = sum(len(e.token_ids) for e in a.emissions)
    out = dict(chunk_ms=chunk_ms, bucket=eager.step.batch(eager.arena, eager.rows(rows)).bucket, rows=rows,
               steps=steps, mode=graph.mode, captures=graph.captures, steps_differing=diffs,
               state_equal=state_equal, last_step_tokens=tokens)
    out["equal"] = state_equal and not any(diffs.values()) and (not graph.cuda or (graph.captures or 0) > 0)
    return out


def _rows(t: torch.Tensor, dim: int, rows: int):
    """Index of the stream rows 1..rows along the slot dim (the scratch row 0 is shared by padding)."""
    index = [slice(None)] * t.dim()
    index[dim] = slice(1, rows + 1)
    return tuple(index)


def time_steps(stepper: Stepper, rows_sets: list, reps: int) -> float:
    """Median wall ms of one step of the given rows (batch built, run, labels read back), rotating
    between the sets of rows (fresh inputs) after a warm-up."""
    warm = 4 if stepper.graph else 2  # the graph side: 2 eager warm-ups, capture + replay, replay
    for i in range(warm):
        stepper.run(rows_sets[i % len(rows_sets)])
    times = []
    for i in range(reps):
        _sync(stepper)
        t = time.perf_counter()
        stepper.run(rows_sets[i % len(rows_sets)])  # read_output waits for the device
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def _sync(stepper: Stepper) -> None:
    if stepper.cuda:
        torch.cuda.synchronize()


def state_bytes_per_stream(asr) -> int:
    """Bytes of one stream's row in the state arena (the step's own count)."""
    step_api()
    from onepass.step.arena import StateArena

    return StateArena(asr.model, asr.config.default_right_context, capacity=1).state_bytes_per_stream()


def arena_bytes_measured(asr, chunk_ms: int, streams: int) -> int | None:
    """Device bytes allocated per stream by an arena of ``streams`` (CUDA only: allocator count)."""
    if asr.device.type != "cuda":
        return None
    runner = step_api()[0]
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    arena = runner.ModelStep(asr.model, runner.StepConfig()).arena(asr.config.right_context_for_chunk_ms(chunk_ms),
                                                                   capacity=streams)
    torch.cuda.synchronize()
    used = torch.cuda.memory_allocated() - before
    del arena
    return used // streams
