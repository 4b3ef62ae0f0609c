"""Log-mel front end: offline, and exact incremental extraction for streaming.

Pre-emphasis, centred STFT with zero padding, power spectrum, Slaney mel filterbank, natural
log with a small guard. Frame ``f`` is centred on sample ``hop * f`` and its window is zero
outside ``[hop*f - win/2, hop*f + win/2)``, so a streamed frame is final as soon as those
samples have arrived; streamed frames equal offline frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .config import FrontendConfig


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def slaney_mel_filterbank(sample_rate: int, n_fft: int, num_mel_bins: int) -> torch.Tensor:
    """Slaney-scale, Slaney-normalised triangular filters, fmin 0, fmax sample_rate/2:
    shape (num_mel_bins, n_fft // 2 + 1), float32."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    mel_points = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), num_mel_bins + 2)
    hz = _mel_to_hz(mel_points)
    lower = (fft_freqs[None, :] - hz[:-2, None]) / (hz[1:-1] - hz[:-2])[:, None]
    upper = (hz[2:, None] - fft_freqs[None, :]) / (hz[2:] - hz[1:-1])[:, None]
    fb = np.maximum(0.0, np.minimum(lower, upper))
    fb *= (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return torch.from_numpy(fb.astype(np.float32))


class LogMel(nn.Module):
    """Holds the filterbank and window; turns pre-emphasised samples into log-mel frames."""

    def __init__(self, config: FrontendConfig, filterbank: torch.Tensor | None = None,
                 window: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        if filterbank is None:
            filterbank = slaney_mel_filterbank(config.sample_rate, config.n_fft, config.num_mel_bins)
        if window is None:
            window = torch.hann_window(config.win_length, periodic=False, dtype=torch.float32)
        low = getattr(torch, config.mel_dtype)
        filterbank = filterbank.reshape(config.num_mel_bins, config.n_fft // 2 + 1).to(low).float()
        window = window.reshape(-1).to(low).float()
        left = (config.n_fft - window.numel()) // 2
        padded = torch.zeros(config.n_fft)
        padded[left:left + window.numel()] = window
        self.register_buffer("filterbank", filterbank.contiguous(), persistent=False)
        self.register_buffer("window", padded, persistent=False)

    def preemphasize(self, x: torch.Tensor) -> torch.Tensor:
        """y[n] = x[n] - a*x[n-1] along the last axis, y[0] = x[0] (a whole signal; streams
        continue it across pieces in ``SampleWindows.accept``)."""
        a = self.config.preemphasis
        if a == 0.0 or x.shape[-1] == 0:
            return x
        return torch.cat([x[..., :1], x[..., 1:] - a * x[..., :-1]], dim=-1)

    def frames(self, y: torch.Tensor) -> torch.Tensor:
        """Log-mel frames of pre-emphasised samples laid out as un-centred STFT input:
        y (..., n_fft + hop*(n-1)) -> (..., n, num_mel_bins)."""
        cfg = self.config
        lead = y.shape[:-1]
        y = y.reshape(-1, y.shape[-1])
        spec = torch.stft(y, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft,
                          window=self.window, center=False, return_complex=True)
        power = torch.view_as_real(spec).pow(2).sum(-1).sqrt().pow(2)
        mel = torch.matmul(self.filterbank, power)
        out = torch.log(mel + cfg.log_guard).transpose(1, 2)
        return out.reshape(*lead, out.shape[1], out.shape[2])

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Offline features. audio (B, N) float32 at the model rate, lengths (B,) valid samples.
        Returns features (B, N_max//hop + 1, mels) with frames past each valid length zeroed,
        and the valid frame counts (lengths // hop)."""
        cfg = self.config
        mask = torch.arange(audio.shape[1], device=audio.device)[None, :] < lengths[:, None]
        y = self.preemphasize(audio.float()).masked_fill(~mask, 0.0)
        half = cfg.n_fft // 2
        y = nn.functional.pad(y, (half, half))
        feats = self.frames(y)
        frame_lengths = torch.div(lengths, cfg.hop_length, rounding_mode="floor")
        valid = torch.arange(feats.shape[1], device=audio.device)[None, :] < frame_lengths[:, None]
        return feats * valid[..., None], frame_lengths


@dataclass
class FrameAudio:
    """The STFT input of ``frames`` consecutive mel frames of one stream: ``n_fft + hop*(frames-1)``
    pre-emphasised samples (none when ``frames`` is 0)."""

    samples: np.ndarray  # float32
    frames: int


class SampleWindows:
    """One stream's pre-emphasised samples, cut into the STFT input of its mel frames: the host
    half of the streaming front end. ``LogMel.frames`` turns a batch of ``take`` results into
    log-mel frames once per step, on the model's device, for every stream in the step.

    ``accept`` keeps the samples (pre-emphasis continues across calls) and says how many frames
    became final; ``finish`` makes the frames an offline pass would add at the end of the input
    (their windows zero padded); ``take(n)`` hands out the next n frames' samples and forgets
    the samples no later frame reads (at most one window is kept).
    """

    def __init__(self, config: FrontendConfig):
        self.config = config
        self.hop, self.half = config.hop_length, config.n_fft // 2
        self.lookahead = config.win_length // 2  # samples past a frame's centre its window reads
        self.preemphasis = np.float32(config.preemphasis)
        self.samples_in = 0  # samples received so far
        self.ready = 0  # frames final so far
        self.next_frame = 0  # the next frame ``take`` hands out
        self._last: np.float32 | None = None  # last raw sample (pre-emphasis memory)
        # pre-emphasised samples from absolute index self._start on (starts with the centre pad)
        self._buf = np.zeros(self.half, np.float32)
        self._start = -self.half

    def accept(self, samples: np.ndarray) -> int:
        """Add float32 samples at the model rate; returns how many frames became final (frame f
        is final once samples up to hop*f + win/2 have arrived)."""
        x = np.asarray(samples, np.float32).reshape(-1)
        if x.size:
            y = x.copy()
            if self.preemphasis:
                y[1:] -= self.preemphasis * x[:-1]
                if self._last is not None:
                    y[0] -= self.preemphasis * self._last
            self._last = x[-1]
            self._buf = np.concatenate([self._buf, y])
            self.samples_in += x.size
        return self._advance((self.samples_in - self.lookahead) // self.hop + 1)

    def finish(self) -> int:
        """End of input: frames up to the offline valid count (samples_in // hop) become final."""
        return self._advance(self.samples_in // self.hop)

    def _advance(self, ready: int) -> int:
        new = max(0, ready - self.ready)
        self.ready += new
        return new

    def take(self, n: int) -> FrameAudio:
        """The samples of the next ``n`` final frames (zero past the end of the input)."""
        if n <= 0:
            return FrameAudio(np.zeros(0, np.float32), 0)
        if self.next_frame + n > self.ready:
            raise ValueError(f"{n} frames asked, {self.ready - self.next_frame} final")
        begin = self.hop * self.next_frame - self.half - self._start
        length = self.config.n_fft + self.hop * (n - 1)
        seg = self._buf[begin:begin + length]
        if seg.size < length:
            seg = np.concatenate([seg, np.zeros(length - seg.size, np.float32)])
        else:
            seg = seg.copy()
        self.next_frame += n
        keep = self.hop * self.next_frame - self.half - self._start
        self._buf = self._buf[keep:]
        self._start += keep
        return FrameAudio(seg, n)
