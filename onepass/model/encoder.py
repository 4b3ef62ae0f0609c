"""Cache-aware FastConformer encoder: one code path for offline and streaming.

The encoder consumes mel frames in blocks. A block starts on a chunk boundary of r+1 encoder
frames and sees, per frame, its own chunk and left_context frames before it (``chunked_limited``).
The per-layer state holds projected keys and values of the last left_context frames, the conv
module's left state and the subsampling's pending frames. Offline is the same computation in
large blocks, so streaming equals offline by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import sinusoids
from .conformer import ConformerLayer
from .config import EncoderConfig
from .subsampling import Subsampling, SubsamplingState


@dataclass
class EncoderState:
    """Everything one batch of streams carries between blocks (batch on dim 1 of the stacks)."""

    subsampling: SubsamplingState
    keys: torch.Tensor  # (layers, B, H, L, head_dim) projected keys of the left context
    values: torch.Tensor  # (layers, B, H, L, head_dim)
    conv: torch.Tensor  # (layers, B, D, kernel-1) conv module left state
    cache_len: torch.Tensor  # (B,) valid frames in keys/values (right-aligned)
    frames: torch.Tensor  # (B,) encoder frames produced so far

    def select(self, index: torch.Tensor) -> "EncoderState":
        return EncoderState(self.subsampling.select(index), self.keys[:, index], self.values[:, index],
                            self.conv[:, index], self.cache_len[index], self.frames[index])


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.subsampling = Subsampling(config)
        self.layers = nn.ModuleList(ConformerLayer(config) for _ in range(config.num_layers))
        self._tables: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._masks: dict[tuple[int, int], torch.Tensor] = {}

    def clear_tables(self) -> None:
        """Forget precomputed position projections (call after changing weights, dtype or device)."""
        self._tables.clear()
        self._masks.clear()

    def initial_state(self, batch: int, aligned: bool = False) -> EncoderState:
        cfg = self.config
        p = next(self.parameters())
        dev, dt = p.device, p.dtype
        n, h, hd, left = cfg.num_layers, cfg.num_heads, cfg.head_dim, cfg.left_context
        kv = torch.zeros(n, batch, h, left, hd, device=dev, dtype=dt)
        return EncoderState(
            subsampling=self.subsampling.initial_state(batch, dev, dt, aligned=aligned),
            keys=kv, values=kv.clone(),
            conv=torch.zeros(n, batch, cfg.hidden_size, cfg.conv_kernel_size - 1, device=dev, dtype=dt),
            cache_len=torch.zeros(batch, dtype=torch.long, device=dev),
            frames=torch.zeros(batch, dtype=torch.long, device=dev),
        )

    def _position_table(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected position keys for distances -(t-1)..L+t-1 for every layer, and the
        (t, L+t) index of each (query, key) pair into them. Computed once per block length."""
        if t not in self._tables:
            left = self.config.left_context
            p = next(self.parameters())
            dist = torch.arange(-(t - 1), left + t, device=p.device)
            pe = sinusoids(dist, self.config.hidden_size).to(p.dtype)
            with torch.no_grad():
                pos = torch.stack([layer.self_attn.project_positions(pe) for layer in self.layers])
            j = torch.arange(t, device=p.device)[:, None]
            i = torch.arange(left + t, device=p.device)[None, :]
            self._tables[t] = (pos, (j + left - i + t - 1))
        return self._tables[t]

    def _chunk_mask(self, t: int, chunk: int) -> torch.Tensor:
        """(t, L+t) True where a query may not see a key under chunked_limited attention."""
        key = (t, chunk)
        if key not in self._masks:
            left = self.config.left_context
            dev = next(self.parameters()).device
            qc = torch.div(torch.arange(t, device=dev), chunk, rounding_mode="floor")[:, None]
            kc = torch.div(torch.arange(left + t, device=dev) - left, chunk, rounding_mode="floor")[None, :]
            diff = qc - kc
            self._masks[key] = ~((diff >= 0) & (diff <= left // chunk))
        return self._masks[key]

    def forward(self, mel: torch.Tensor, mel_valid: torch.Tensor, final: torch.Tensor,
                state: EncoderState, right_context: int,
                lead: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a block of new mel frames (B, T, mels) for streams at chunk boundaries
        (``lead``: see ``Subsampling.forward``). Returns encoder frames (B, T', D) and their
        valid counts (B,); updates ``state``."""
        x, valid = self.subsampling(mel, mel_valid, final, state.subsampling, lead)
        b, t, _ = x.shape
        if t == 0:
            return x, valid
        left = self.config.left_context
        positions, rel_index = self._position_table(t)
        key_pos = torch.arange(left + t, device=x.device)[None, :]
        key_hidden = (key_pos < left - state.cache_len[:, None]) | (key_pos >= left + valid[:, None])
        mask = (self._chunk_mask(t, right_context + 1)[None] | key_hidden[:, None, :])[:, None]
        row_valid = (torch.arange(t, device=x.device)[None, :] < valid[:, None]).to(x.dtype)[..., None]
        full = bool((valid == t).all())
        ks = self.config.conv_kernel_size - 1
        if not full:
            kv_index = (valid[:, None] + torch.arange(left, device=x.device)[None, :])
            kv_index = kv_index[:, None, :, None].expand(b, self.config.num_heads, left, self.config.head_dim)
            conv_index = (valid[:, None] + torch.arange(ks, device=x.device)[None, :])
            conv_index = conv_index[:, None, :].expand(b, self.config.hidden_size, ks)
        new_k, new_v, new_conv = [], [], []
        for n, layer in enumerate(self.layers):
            x, k, v, conv_in = layer(x, state.keys[n], state.values[n], state.conv[n], positions[n],
                                     rel_index, mask, row_valid)
            if full:
                new_k.append(k[:, :, t:]), new_v.append(v[:, :, t:]), new_conv.append(conv_in[:, :, t:])
            else:
                new_k.append(k.gather(2, kv_index))
                new_v.append(v.gather(2, kv_index))
                new_conv.append(conv_in.gather(2, conv_index))
        state.keys = torch.stack(new_k)
        state.values = torch.stack(new_v)
        state.conv = torch.stack(new_conv)
        state.cache_len = torch.clamp(state.cache_len + valid, max=left)
        state.frames = state.frames + valid
        return x, valid
