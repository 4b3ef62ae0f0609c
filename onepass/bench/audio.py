"""Deterministic speech-like test audio (no data sets needed)."""

from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Syllables (80-300 ms of harmonics under two formants, some with a noise burst before)
    separated by short pauses and occasional longer ones; float32, peak 0.5, faint noise floor."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SAMPLE_RATE))
    out = np.zeros(n)
    pos = int(rng.integers(0, SAMPLE_RATE // 20))
    f0_base = rng.uniform(95.0, 210.0)
    while pos < n:
        if rng.random() < 0.35:  # fricative: differentiated noise under a Hann envelope
            m = int(rng.uniform(0.03, 0.09) * SAMPLE_RATE)
            burst = 0.15 * np.diff(rng.standard_normal(m), prepend=0.0) * np.hanning(m)
            end = min(n, pos + m)
            out[pos:end] += burst[:end - pos]
            pos = end
        m = int(rng.uniform(0.08, 0.30) * SAMPLE_RATE)
        t = np.arange(m) / SAMPLE_RATE
        f0 = f0_base * rng.uniform(0.85, 1.15) * (1.0 + rng.uniform(-0.2, 0.2) * t / t[-1])
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        f1, f2 = rng.uniform(300, 900), rng.uniform(900, 2600)
        voiced = np.zeros(m)
        for h in range(1, int(7600 / f0.mean()) + 1):
            fh = h * f0.mean()
            amp = np.exp(-((fh - f1) / 180.0) ** 2) + 0.6 * np.exp(-((fh - f2) / 250.0) ** 2) + 0.02 / h
            voiced += amp * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
        envelope = np.minimum(1.0, t / 0.015) * np.exp(-t * rng.uniform(1.0, 6.0))
        end = min(n, pos + m)
        out[pos:end] += (voiced * envelope * rng.uniform(0.4, 1.0))[:end - pos]
        pos = end + int((rng.uniform(0.25, 0.6) if rng.random() < 0.12 else rng.uniform(0.01, 0.06)) * SAMPLE_RATE)
    peak = np.abs(out).max()
    out = out * (0.5 / peak) if peak > 0 else out
    return (out + 1e-4 * rng.standard_normal(n)).astype(np.float32)
