"""Causal depthwise-striding subsampling (x8) with exact streaming state.

Three stride-2 kernel-3 Conv2d stages over (time, mel). Offline, each stage pads time with
k-1 zeros before and s-1 after, frequency likewise, and zeroes frames past the valid length
before the next stage (so padded batches are exact). Streaming keeps, per stage, the input
frames a later output still needs; a final call applies the offline right pad and masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import EncoderConfig


@dataclass
class SubsamplingState:
    pending: list[torch.Tensor]  # per stage: (B, C_in, p, F_in) input frames not yet consumed
    frames_in: list[torch.Tensor]  # per stage: (B,) valid input frames seen so far
    frames_out: list[torch.Tensor]  # per stage: (B,) output frames produced so far

    def select(self, index: torch.Tensor) -> "SubsamplingState":
        return SubsamplingState([p[index] for p in self.pending], [f[index] for f in self.frames_in],
                                [f[index] for f in self.frames_out])


class SubsamplingLayer(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        c, k, s = config.subsampling_channels, config.subsampling_kernel_size, config.subsampling_stride
        self.depthwise_conv = nn.Conv2d(c, c, k, stride=s, groups=c)
        self.pointwise_conv = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class Subsampling(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        c, k, s = config.subsampling_channels, config.subsampling_kernel_size, config.subsampling_stride
        self.kernel, self.stride = k, s
        self.conv_in = nn.Conv2d(1, c, k, stride=s)
        self.layers = nn.ModuleList(SubsamplingLayer(config) for _ in range(config.subsampling_layers - 1))
        self.linear = nn.Linear(c * config.subsampled_freq_bins, config.hidden_size)
        self.scale = config.hidden_size**0.5 if config.xscaling else 1.0

    def initial_state(self, batch: int, device=None, dtype=torch.float32) -> SubsamplingState:
        cfg = self.config
        pending, freq, chans = [], cfg.input_size, 1
        for _ in range(cfg.subsampling_layers):
            pending.append(torch.zeros(batch, chans, self.kernel - 1, freq, device=device, dtype=dtype))
            freq = (freq + self.kernel + self.stride - 2 - self.kernel) // self.stride + 1
            chans = cfg.subsampling_channels
        zeros = [torch.zeros(batch, dtype=torch.long, device=device) for _ in range(cfg.subsampling_layers)]
        return SubsamplingState(pending, zeros, [z.clone() for z in zeros])

    def offline_length(self, frames: torch.Tensor) -> torch.Tensor:
        """Encoder frames an offline pass makes from `frames` valid mel frames."""
        for _ in range(self.config.subsampling_layers):
            frames = self._stage_total(frames)
        return frames

    def _stage_total(self, frames_in: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel, self.stride
        return torch.div(frames_in + (k - 1) + (s - 1) - k, s, rounding_mode="floor") + 1

    def forward(self, mel: torch.Tensor, valid: torch.Tensor, final: torch.Tensor,
                state: SubsamplingState) -> tuple[torch.Tensor, torch.Tensor]:
        """mel (B, T, F) new mel frames; valid (B,) how many are real (rows that are not final
        must have all T valid); final (B,) bool: this is the row's last call.
        Returns (B, T', hidden) scaled embeddings and their valid counts (B,)."""
        x = mel.unsqueeze(1)  # (B, 1, T, F)
        stages = [self.conv_in, *self.layers]
        for i, conv in enumerate(stages):
            x, valid = self._stage(i, conv, x, valid, final, state)
            x = torch.relu(x)
        b, c, t, f = x.shape
        x = self.linear(x.transpose(1, 2).reshape(b, t, c * f))
        return x * self.scale if self.scale != 1.0 else x, valid

    def _stage(self, i, conv, x, valid, final, state):
        k, s = self.kernel, self.stride
        t_new = x.shape[2]
        time = torch.arange(t_new, device=x.device)
        x = x * (time[None, :] < valid[:, None])[:, None, :, None].to(x.dtype)
        buf = torch.cat([state.pending[i], x], dim=2)
        p = state.pending[i].shape[2]
        steady = max(0, (p + t_new - k) // s + 1) if p + t_new >= k else 0
        total_in = state.frames_in[i] + valid
        remaining = self._stage_total(total_in) - state.frames_out[i]
        n_out = torch.where(final, remaining, torch.full_like(remaining, steady))
        n_max = int(n_out.max()) if n_out.numel() else 0
        need = s * (n_max - 1) + k if n_max > 0 else 0
        if need > buf.shape[2]:
            buf = nn.functional.pad(buf, (0, 0, 0, need - buf.shape[2]))
        buf_f = nn.functional.pad(buf[:, :, :need], (k - 1, s - 1))
        if n_max > 0:
            out = conv(buf_f)
        else:
            out = buf_f.new_zeros(buf.shape[0], self.config.subsampling_channels, 0, self._freq_out(buf_f.shape[3]))
        out_time = torch.arange(out.shape[2], device=x.device)
        out = out * (out_time[None, :] < n_out[:, None])[:, None, :, None].to(out.dtype)
        state.pending[i] = buf[:, :, s * steady:p + t_new].clone() if steady else buf[:, :, :p + t_new].clone()
        state.frames_in[i] = total_in
        state.frames_out[i] = state.frames_out[i] + n_out
        return out, n_out

    def _freq_out(self, padded_freq: int) -> int:
        return (padded_freq - self.kernel) // self.stride + 1
