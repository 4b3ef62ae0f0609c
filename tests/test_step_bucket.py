"""The step's state arena and buckets: a batch padded into a larger bucket gives the same labels
and state, and writes no row but its own and the scratch row; the label-looping decoder with the
fixed bound (what a CUDA graph runs) gives the windowed decoder's labels."""

from __future__ import annotations

import pytest
import torch

from onepass.step import ModelStep, Row, StepConfig
from tests.test_step_models import tiny_model


def _chunks(model, r: int, steps: int, streams: int, seed: int):
    """Per step, per stream: (mel frames, lead, final); the first chunk is short, the last partial."""
    g = torch.Generator().manual_seed(seed)
    f = model.config.encoder.subsampling_factor
    mels = model.config.frontend.num_mel_bins
    plan = []
    for k in range(steps):
        row = []
        for i in range(streams):
            n = 1 + f * r if k == 0 else f * (r + 1)
            final = k == steps - 1
            if final:
                n = int(torch.randint(1, n + 1, (1,), generator=g))
            row.append((torch.randn(n, mels, generator=g) * 2, f - 1 if k == 0 else 0, final))
        plan.append(row)
    return plan


def _state(arena, slot: int) -> list[torch.Tensor]:
    return [t.select(d, slot).clone() for t, d in arena.fields()]


@pytest.mark.parametrize("mine", [[5, 2, 3], [2, 3, 4]])  # any slots; consecutive ones (views when unpadded)
@pytest.mark.parametrize("prompt", [True, False])
@pytest.mark.parametrize("r", [0, 1, 3])
def test_padded_bucket_is_identical_and_touches_no_other_row(prompt, r, mine):
    model = tiny_model(prompt, seed=r)
    exact = ModelStep(model, StepConfig(decoder="windowed", buckets=None))
    padded = ModelStep(model, StepConfig(decoder="label_looping", sync_every=0, buckets=(8,)))
    arenas = [s.arena(r, capacity=6) for s in (exact, padded)]
    for a in arenas:
        for _ in range(6):
            a.acquire()
    others = [s for s in range(1, 7) if s not in mine]
    plan = _chunks(model, r, steps=5, streams=len(mine), seed=r)
    for step_rows in plan:
        before = {s: _state(arenas[1], s) for s in others}
        results = []
        for s, a in zip((exact, padded), arenas):
            rows = [Row(slot, mel, lead, final, prompt=i + 1, frame_offset=3 * i)
                    for i, (slot, (mel, lead, final)) in enumerate(zip(mine, step_rows))]
            batch = s.batch(a, rows)
            assert (batch.row_range is not None) == (s is exact and mine == [2, 3, 4])
            results.append(s.run(a, batch))
        assert batch.bucket == 8 and batch.slots[3:].eq(arenas[1].scratch).all()
        want, got = results
        assert got.frames == want.frames
        assert [e.token_ids for e in got.emissions] == [e.token_ids for e in want.emissions]
        assert [e.frames for e in got.emissions] == [e.frames for e in want.emissions]
        for e, w in zip(got.emissions, want.emissions):
            assert e.probs == pytest.approx(w.probs, rel=1e-4)
        for s in others:  # rows of other streams: bit for bit as before
            assert all(torch.equal(a, b) for a, b in zip(before[s], _state(arenas[1], s)))
        for s in mine:
            for a, b in zip(_state(arenas[0], s), _state(arenas[1], s)):
                assert torch.allclose(a.float(), b.float(), atol=1e-5), s


def test_labels_are_emitted():
    """The tiny random model is not all blank (else the tests above would prove little)."""
    model = tiny_model(True, seed=0)
    step = ModelStep(model)
    arena = step.arena(1, capacity=2)
    slot = arena.acquire()
    total = 0
    for mel, lead, final in [row[0] for row in _chunks(model, 1, 6, 1, seed=0)]:
        total += len(step.run_rows(arena, [Row(slot, mel, lead, final, prompt=1)]).emissions[0].token_ids)
    assert total > 0


def test_arena_grows_keeps_rows_and_resets_on_acquire():
    model = tiny_model(False)
    step = ModelStep(model)
    arena = step.arena(0, capacity=2, growth=3)
    a, b = arena.acquire(), arena.acquire()
    assert (a, b) == (1, 2) and arena.in_use == 2
    mel = torch.randn(1, model.config.frontend.num_mel_bins)
    step.run_rows(arena, [Row(b, mel, 7, False)])
    kept = _state(arena, b)
    c = arena.acquire()  # full: grows by 3, a new generation
    assert arena.capacity == 5 and arena.generation == 1 and c == 3
    assert all(torch.equal(x, y) for x, y in zip(kept, _state(arena, b)))
    arena.release(b)
    assert arena.acquire() == b  # the lowest free slot, reset to the initial state
    fresh = _state(arena, a)
    assert all(torch.equal(x, y) for x, y in zip(fresh, _state(arena, b)))
    with pytest.raises(ValueError):
        arena.release(7)
