"""The streaming front end: per-stream sample windows on the host, one batched STFT/mel per step.

Frames made that way equal the offline front end's frames of the whole signal. Float features:
compared with a tolerance of 1e-5 (the STFT of a window is the same arithmetic either way, but
FFT and matrix-product blocking may round differently for different batch shapes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onepass.model.config import FrontendConfig
from onepass.model.frontend import LogMel, SampleWindows
from onepass.step.batch import batch_features

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def logmel() -> LogMel:
    return LogMel(FrontendConfig())


def _offline(logmel: LogMel, audio: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(audio)[None]
    feats, n = logmel(x, torch.tensor([x.shape[1]]))
    return feats[0, :int(n[0])]


def _streamed(logmel: LogMel, audio: np.ndarray, rng: np.random.Generator, leads: list[int],
              frames_per_step: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Feed ``audio`` in random pieces; every time frames are final, take them in steps of up to
    ``frames_per_step`` and compute each step as one row of a batch (with a random lead and
    other rows around it); return the frames in order and the steps' full rows."""
    w = SampleWindows(logmel.config)
    out, rows, ready, pos = [], [], 0, 0
    while pos < len(audio) or ready:
        if pos < len(audio):
            piece = int(rng.integers(1, 4000))
            ready += w.accept(audio[pos:pos + piece])
            pos += piece
            if pos >= len(audio):
                ready += w.finish()
        while ready >= frames_per_step or (pos >= len(audio) and ready):
            n = min(ready, frames_per_step)
            ready -= n
            lead = leads[len(rows) % len(leads)]
            frames = lead + frames_per_step
            others = [w2.take(min(k, frames_per_step)) for w2, k in _others(logmel, rng)]
            audio_rows = others[:1] + [w.take(n)] + others[1:]
            row_leads = [0, lead] + [0] * (len(others) - 1)
            valid = torch.tensor([a.frames for a in audio_rows] + [0])  # and one padding row
            feats = batch_features(logmel, audio_rows, row_leads, frames, len(audio_rows) + 1, valid,
                                   torch.tensor(row_leads + [0]))
            row = feats[1]
            rows.append(row)
            out.append(row[lead:lead + n])
            assert torch.all(row[:lead] == 0) and torch.all(row[lead + n:] == 0)
            assert torch.all(feats[-1] == 0)  # the padding row
    return torch.cat(out), rows


def _others(logmel: LogMel, rng: np.random.Generator):
    """Two other streams sharing the step, with their own audio."""
    for _ in range(2):
        w = SampleWindows(logmel.config)
        k = w.accept(rng.standard_normal(int(rng.integers(400, 3000))).astype(np.float32) * 0.1)
        yield w, k


@pytest.mark.parametrize("seconds", [0.013, 0.5, 2.37])
@pytest.mark.parametrize("frames_per_step", [1, 8, 25])
def test_batched_step_features_equal_offline(logmel, seconds, frames_per_step):
    rng = np.random.default_rng(int(seconds * 1000) + frames_per_step)
    audio = (rng.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)
    got, _ = _streamed(logmel, audio, rng, leads=[7, 0, 3], frames_per_step=frames_per_step)
    want = _offline(logmel, audio)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=0, atol=TOLERANCE), float((got - want).abs().max())


def test_windows_hand_out_only_final_frames_and_keep_one_window(logmel):
    w = SampleWindows(logmel.config)
    assert w.accept(np.zeros(199, np.float32)) == 0  # frame 0 needs samples up to win/2 = 200
    assert w.accept(np.zeros(1, np.float32)) == 1
    with pytest.raises(ValueError):
        w.take(2)
    assert w.take(0).frames == 0 and w.next_frame == 0
    w.accept(np.ones(16150, np.float32))
    w.take(w.ready)
    assert w._buf.size <= logmel.config.n_fft  # what later frames still read
    assert w.finish() == 1 and w.ready == 16350 // 160  # the offline count: one more frame


def test_windows_continue_preemphasis_across_pieces(logmel):
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(3200).astype(np.float32)
    whole, pieces = SampleWindows(logmel.config), SampleWindows(logmel.config)
    whole.accept(audio)
    for a in np.split(audio, [1, 2, 500, 1601]):
        pieces.accept(a)
    assert np.array_equal(whole._buf, pieces._buf)
