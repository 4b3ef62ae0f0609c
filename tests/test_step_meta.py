"""The step body on torch's ``meta`` device: any host read (``.item()``, ``bool(t)``,
``.tolist()``, ``nonzero``, boolean-mask indexing) or any tensor made on another device raises
there, so a body that runs through proves it has neither (what a CUDA graph needs)."""

from __future__ import annotations

import pytest
import torch

from onepass.decoding.greedy import greedy_decode
from onepass.model.attention import sinusoids
from onepass.step import LABEL_LOOPING, StateArena, StepBatch, step_body
from onepass.step.batch import device_features
from tests.test_step_models import tiny_model


def test_meta_catches_host_reads_and_foreign_tensors():
    m = torch.ones(3, device="meta")
    for read in (lambda: m.sum().item(), lambda: bool(m.sum()), lambda: m.tolist(), lambda: torch.nonzero(m),
                 lambda: m[m > 0], lambda: torch.arange(3.0) * m):
        with pytest.raises((RuntimeError, NotImplementedError)):
            read()


def _meta_batch(model, bucket: int, frames: int, any_final: bool = False, any_lead: bool = False) -> StepBatch:
    long = dict(dtype=torch.long, device="meta")
    return StepBatch(slots=torch.empty(bucket, **long), mel=torch.empty(bucket, frames, model.config.frontend.num_mel_bins,
                                                                         device="meta"),
                     valid=torch.empty(bucket, **long), final=torch.empty(bucket, dtype=torch.bool, device="meta"),
                     lead=torch.empty(bucket, **long), prompt=torch.empty(bucket, **long),
                     frame_offset=torch.empty(bucket, **long), rows=bucket, any_final=any_final, any_lead=any_lead)


@pytest.mark.parametrize("prompt", [True, False])
@pytest.mark.parametrize("right_context,chunks", [(0, 1), (1, 1), (3, 1), (3, 4)])
def test_step_body_runs_on_meta(prompt, right_context, chunks):
    model = tiny_model(prompt, device="meta")
    arena = StateArena(model, right_context, capacity=5)
    assert arena.encoder.keys.device.type == "meta"
    factor = model.config.encoder.subsampling_factor
    for bucket, any_final, any_lead in ((1, False, False), (4, True, False), (8, False, True), (8, False, False)):
        # steady batches (what graphs capture) slice the caches; the others mask and gather
        batch = _meta_batch(model, bucket, factor * (right_context + 1) * chunks, any_final, any_lead)
        with torch.no_grad():
            out = step_body(model, arena, batch, LABEL_LOOPING, sync_every=0)
        t = chunks * (right_context + 1)
        assert out.frames.shape == (bucket,) and out.encoded.shape[:2] == (bucket, t)
        assert out.labels.token_ids.shape == (bucket, t * model.config.max_symbols_per_step)
        assert out.labels.counts.device.type == "meta"


def test_windowed_decoder_and_sync_mode_read_the_host():
    """The two decoders the eager CPU step may use do read the host: the meta test would catch them."""
    model = tiny_model(device="meta")
    arena = StateArena(model, 1, capacity=2)
    batch = _meta_batch(model, 2, 16)
    with torch.no_grad(), pytest.raises((RuntimeError, NotImplementedError)):
        step_body(model, arena, batch, LABEL_LOOPING, sync_every=1)
    dec = arena.decoder_rows(batch.slots)
    with torch.no_grad(), pytest.raises((RuntimeError, NotImplementedError)):
        greedy_decode(model, torch.empty(2, 2, 24, device="meta"), batch.valid, dec, batch.frame_offset)


def test_position_sinusoids_on_the_distances_device():
    assert sinusoids(torch.arange(5, device="meta"), 8).device.type == "meta"


@pytest.mark.parametrize("any_final", [False, True])
def test_step_body_with_phrase_boosting_runs_on_meta(any_final):
    """A batch where some streams have phrases (the arena's boosting pool active): still no host read."""
    from onepass.decoding.phrases import build_tree

    model = tiny_model(True, device="meta")
    arena = StateArena(model, 1, capacity=5)
    handle = arena.boost.add(build_tree([([1, 2, 3], 2.0), ([4, 5], 3.0)]))
    arena.boost.attach(2, handle)
    assert arena.boost.active and arena.boost.arc_token.device.type == "meta"
    batch = _meta_batch(model, 4, model.config.encoder.subsampling_factor * 2, any_final)
    with torch.no_grad():
        out = step_body(model, arena, batch, LABEL_LOOPING, sync_every=0)
    assert out.labels.counts.shape == (4,) and arena.boost.node.device.type == "meta"


def test_step_features_run_on_meta():
    """The front end's device half (one STFT and mel product for the whole step, masks for lead and
    padding) has no host reads either."""
    model = tiny_model(device="meta")
    cfg = model.config.frontend
    frames, bucket = 16, 8
    y = torch.empty(bucket, cfg.n_fft + cfg.hop_length * (frames - 1), device="meta")
    long = dict(dtype=torch.long, device="meta")
    feats = device_features(model.frontend, y, torch.empty(bucket, **long), torch.empty(bucket, **long))
    assert feats.shape == (bucket, frames, cfg.num_mel_bins) and feats.device.type == "meta"


@pytest.mark.parametrize("any_final", [False, True])
def test_beam_search_step_runs_on_meta(any_final):
    """Beam search in the step (hypotheses in the arena, phrases on some rows, labels into fixed
    buffers): no host read either, so a graph can capture it."""
    from onepass.decoding.beam import beam_capacity
    from onepass.decoding.phrases import build_tree

    model = tiny_model(True, device="meta")
    arena = StateArena(model, 1, capacity=5, beam=4)
    assert arena.beam.score.device.type == "meta" and arena.beam.h.shape[2] == 4
    arena.attach_boost(2, arena.boost.add(build_tree([([1, 2, 3], 2.0), ([4, 5], 3.0)])))
    batch = _meta_batch(model, 4, model.config.encoder.subsampling_factor * 2, any_final)
    with torch.no_grad():
        out = step_body(model, arena, batch, LABEL_LOOPING, sync_every=0)
    assert out.labels.token_ids.shape == (4, beam_capacity(2)) and out.labels.counts.device.type == "meta"
