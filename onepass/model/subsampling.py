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
from .linear import Linear
from .rows import Rows, put, take


@dataclass
class SubsamplingState:
    pending: list[torch.Tensor]  # per stage: (B, C_in, p, F_in) input frames not yet consumed
    frames_in: list[torch.Tensor]  # per stage: (B,) valid input frames seen so far
    frames_out: list[torch.Tensor]  # per stage: (B,) output frames produced so far


def _put(tensors: list[torch.Tensor], i: int, slots: Rows | None, new: torch.Tensor) -> None:
    """Stage i's new state: in place into rows ``slots``, or a new tensor when None."""
    if slots is None:
        tensors[i] = new.clone()
    else:
        put(tensors[i], slots, new)


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
        self.linear = Linear(c * config.subsampled_freq_bins, config.hidden_size)
        self.scale = config.hidden_size**0.5 if config.xscaling else 1.0

    def initial_state(self, batch: int, device=None, dtype=torch.float32, aligned: bool = False) -> SubsamplingState:
        """Zero state. Default: the offline left pad (k-1 zero frames per stage), for a first
        block of 1 + f*(n-1) mel frames. ``aligned``: k-s pending frames per stage, like a stream
        in mid-flight, so a first chunk can run in one batch with later chunks: give it
        ``lead = factor - 1`` zero frames in front (see ``forward``)."""
        cfg = self.config
        pending, freq, chans = [], cfg.input_size, 1
        frames = (self.kernel - self.stride) if aligned else (self.kernel - 1)
        for _ in range(cfg.subsampling_layers):
            pending.append(torch.zeros(batch, chans, frames, freq, device=device, dtype=dtype))
            freq = (freq + self.kernel + self.stride - 2 - self.kernel) // self.stride + 1
            chans = cfg.subsampling_channels
        zeros = [torch.zeros(batch, dtype=torch.long, device=device) for _ in range(cfg.subsampling_layers)]
        return SubsamplingState(pending, zeros, [z.clone() for z in zeros])

    @property
    def first_chunk_lead(self) -> int:
        """Zero mel frames put before a stream's first chunk to give it the later-chunk length."""
        return self.config.subsampling_factor - 1

    def offline_length(self, frames: torch.Tensor) -> torch.Tensor:
        """Encoder frames an offline pass makes from `frames` valid mel frames."""
        for _ in range(self.config.subsampling_layers):
            frames = self._stage_total(frames)
        return frames

    def _stage_total(self, frames_in: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel, self.stride
        out = torch.div(frames_in + (k - 1) + (s - 1) - k, s, rounding_mode="floor") + 1
        return torch.where(frames_in > 0, out, 0)  # nothing in, nothing out (a stream closed without audio)

    def forward(self, mel: torch.Tensor, valid: torch.Tensor, final: torch.Tensor,
                state: SubsamplingState, lead: torch.Tensor | None = None,
                slots: Rows | None = None, steady: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """mel (B, T, F) new mel frames; valid (B,) how many are real (rows that are not final
        must have all T valid); final (B,) bool: this is the row's last call; lead (B,) zero
        frames in front of a row's real frames (a first chunk in an aligned state), whose
        outputs are discarded stage by stage; slots (B,): rows of ``state`` to read and update
        in place (None: all of it, replaced). Shapes follow from T alone (no host reads): with
        an aligned state, T a multiple of the factor keeps the pending shapes fixed. ``steady``
        (known to the caller): no row is final or has a lead, so the masks are skipped.
        Returns (B, T', hidden) scaled embeddings and their valid counts (B,)."""
        x = mel.unsqueeze(1)  # (B, 1, T, F)
        if lead is None:
            lead = torch.zeros_like(valid)
        stages = [self.conv_in, *self.layers]
        steady, dense = x.shape[2], steady  # frames of the rows that are not final (the rest is tail padding)
        for i, conv in enumerate(stages):
            x, valid, lead, steady = self._stage(i, conv, x, valid, lead, final, state, steady, slots, dense)
            x = torch.relu_(x)  # the stage's own output (a mask result), so in place is safe
        # lead frames vanish by the last stage: first_chunk_lead (factor - 1) leaves junk 3, 1, 0
        b, c, t, f = x.shape
        x = self.linear(x.transpose(1, 2).reshape(b, t, c * f))
        return x * self.scale if self.scale != 1.0 else x, valid

    def _stage(self, i, conv, x, valid, lead, final, state, t_steady, slots, dense):
        k, s = self.kernel, self.stride
        t_new = x.shape[2]
        if not dense:  # (dense rows: every frame real, no lead)
            time = torch.arange(t_new, device=x.device)[None, :]
            keep = (time >= lead[:, None]) & (time < (lead + valid)[:, None])
            x = x * keep[:, None, :, None].to(x.dtype)
        pending = take(state.pending[i], slots)
        buf = torch.cat([pending, x], dim=2)
        p = pending.shape[2]
        steady = (p + t_steady - k) // s + 1 if p + t_steady >= k else 0
        # outputs before the one whose window starts at the first real frame's left pad
        junk = torch.where(lead > 0, torch.div(p + lead - k + 1, s, rounding_mode="floor"), torch.zeros_like(lead))
        total_in = take(state.frames_in[i], slots) + valid
        frames_out = take(state.frames_out[i], slots)
        remaining = self._stage_total(total_in) - frames_out
        real = torch.where(final, remaining, steady - junk)
        n_out = junk + real
        # every output a window over the buffer and the offline right pad can make: a bound on
        # n_out from shapes alone (equal to ``steady`` for whole chunks of an aligned state)
        reach = buf.shape[2] + s - 1
        n_max = (reach - k) // s + 1 if reach >= k else 0
        need = s * (n_max - 1) + k if n_max > 0 else 0
        width = max(need, p + t_steady)
        if width > buf.shape[2]:
            buf = nn.functional.pad(buf, (0, 0, 0, width - buf.shape[2]))
        buf_f = nn.functional.pad(buf[:, :, :need], (k - 1, s - 1))
        if n_max > 0:
            out = conv(buf_f)
        else:
            out = buf_f.new_zeros(buf.shape[0], self.config.subsampling_channels, 0, self._freq_out(buf_f.shape[3]))
        if not dense:
            out_time = torch.arange(out.shape[2], device=x.device)[None, :]
            out_keep = (out_time >= junk[:, None]) & (out_time < n_out[:, None])
            out = out * out_keep[:, None, :, None].to(out.dtype)
        # what a continuing row keeps; a final row's pending is never used again
        _put(state.pending, i, slots, buf[:, :, s * steady:p + t_steady])
        _put(state.frames_in, i, slots, total_in)
        _put(state.frames_out, i, slots, frames_out + real)
        return out, real, junk, steady

    def _freq_out(self, padded_freq: int) -> int:
        return (padded_freq - self.kernel) // self.stride + 1
