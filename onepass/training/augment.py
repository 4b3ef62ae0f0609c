"""SpecAugment-style masking and a VTLP-like mel-axis warp, on [B, T, F] log-mel batches (CPU)."""

from __future__ import annotations

import torch

from .settings import AugmentSettings


def warp_mel_axis(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """[B, T, F] features with utterance b's mel axis scaled by alpha[b]: output bin f reads input bin
    f / alpha (linear interpolation, clamped at the top bin), so alpha > 1 moves formants up."""
    B, T, F = x.shape
    src = (torch.arange(F, dtype=torch.float32)[None, :] / alpha[:, None]).clamp(0, F - 1)  # [B, F]
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=F - 1)
    w = (src - lo)[:, None, :]
    return (x.gather(2, lo[:, None, :].expand(B, T, F)) * (1 - w)
            + x.gather(2, hi[:, None, :].expand(B, T, F)) * w)


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, cfg: AugmentSettings, g: torch.Generator) -> torch.Tensor:
    """Frequency and time masks per utterance, filled with the utterance's mean log-mel (raw log-mels:
    zero would be a loud value, not silence); frames past each length are zeroed as at inference."""
    B, T, F = x.shape
    x = x.clone()
    if cfg.freq_warp:
        x = warp_mel_axis(x, 1 + (2 * torch.rand(B, generator=g) - 1) * cfg.freq_warp)
    for b in range(B):
        n = int(lengths[b])
        fill = x[b, :n].mean() if n else 0.0
        for _ in range(cfg.freq_masks):
            w = int(torch.randint(0, min(cfg.freq_mask_bins, F) + 1, (1,), generator=g))
            f0 = int(torch.randint(0, F - w + 1, (1,), generator=g))
            x[b, :, f0: f0 + w] = fill
        widest = int(cfg.time_mask_fraction * n)
        if cfg.time_mask_frames is not None:
            widest = min(widest, cfg.time_mask_frames)
        for _ in range(cfg.time_masks):
            w = int(torch.randint(0, widest + 1, (1,), generator=g))
            t0 = int(torch.randint(0, max(1, n - w), (1,), generator=g))
            x[b, t0: t0 + w] = fill
    x[torch.arange(T)[None, :] >= lengths[:, None]] = 0.0
    return x
