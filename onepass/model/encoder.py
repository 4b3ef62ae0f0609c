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
from .rows import Rows, put, take
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

    def _position_table(self, t: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected position keys for distances -(t-1)..L+t-1 for every layer, and the
        (t, L+t) index of each (query, key) pair into them. Computed once per block length."""
        if t not in self._tables:
            left = self.config.left_context
            device = device or self.layers[0].self_attn.relative_k_proj.weight.device
            dist = torch.arange(-(t - 1), left + t, device=device)
            pe = sinusoids(dist, self.config.hidden_size).to(self.layers[0].self_attn.relative_k_proj.weight.dtype)
            with torch.no_grad():
                pos = torch.stack([layer.self_attn.project_positions(pe) for layer in self.layers])
            j = torch.arange(t, device=device)[:, None]
            i = torch.arange(left + t, device=device)[None, :]
            self._tables[t] = (pos, (j + left - i + t - 1))
        return self._tables[t]

    def _chunk_mask(self, t: int, chunk: int, device: torch.device | None = None) -> torch.Tensor:
        """(t, L+t) True where a query may not see a key under chunked_limited attention."""
        key = (t, chunk)
        if key not in self._masks:
            left = self.config.left_context
            device = device or self.layers[0].self_attn.relative_k_proj.weight.device
            qc = torch.div(torch.arange(t, device=device), chunk, rounding_mode="floor")[:, None]
            kc = torch.div(torch.arange(left + t, device=device) - left, chunk, rounding_mode="floor")[None, :]
            diff = qc - kc
            self._masks[key] = ~((diff >= 0) & (diff <= left // chunk))
        return self._masks[key]

    def forward(self, mel: torch.Tensor, mel_valid: torch.Tensor, final: torch.Tensor,
                state: EncoderState, right_context: int, lead: torch.Tensor | None = None,
                slots: Rows | None = None, steady: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a block of new mel frames (B, T, mels) for streams at chunk boundaries
        (``lead``: see ``Subsampling.forward``). Returns encoder frames (B, T', D) and their
        valid counts (B,); updates ``state``.

        ``slots``: the rows of ``state`` that hold these streams (a state arena, see
        ``onepass.step``; an index tensor or a slice, ``rows.Rows``): read, and written in
        place layer by layer. None: ``state`` holds exactly these B rows and gets new tensors.
        No host reads and no data-dependent shapes either way (CUDA-graph capturable).

        ``steady`` (the caller knows it): no row is final or has a lead, so every row yields all
        T' frames; the caches then take the last L by slicing, with no masks or gathers."""
        x, valid = self.subsampling(mel, mel_valid, final, state.subsampling, lead, slots, steady)
        b, t, _ = x.shape
        if t == 0:
            return x, valid
        left, dev = self.config.left_context, x.device
        valid = valid.clamp(max=t)  # never more for chunks as the step makes them; a guard for the gathers
        cache_len = take(state.cache_len, slots)
        positions, rel_index = self._position_table(t, dev)
        key_pos = torch.arange(left + t, device=dev)[None, :]
        key_hidden = (key_pos < left - cache_len[:, None]) | (key_pos >= left + valid[:, None])
        mask = (self._chunk_mask(t, right_context + 1, dev)[None] | key_hidden[:, None, :])[:, None]
        row_valid = (torch.arange(t, device=dev)[None, :] < valid[:, None]).to(x.dtype)[..., None]
        # the caches keep the last L (conv: k-1) inputs up to each row's valid end
        if not steady:
            ks = self.config.conv_kernel_size - 1
            kv_index = (valid[:, None] + torch.arange(left, device=dev)[None, :])
            kv_index = kv_index[:, None, :, None].expand(b, self.config.num_heads, left, self.config.head_dim)
            conv_index = (valid[:, None] + torch.arange(ks, device=dev)[None, :])
            conv_index = conv_index[:, None, :].expand(b, self.config.hidden_size, ks)
        new_k, new_v, new_conv = [], [], []
        for n, layer in enumerate(self.layers):
            x, k, v, conv_in = layer(x, take(state.keys[n], slots), take(state.values[n], slots),
                                     take(state.conv[n], slots), positions[n], rel_index, mask, row_valid)
            if steady:
                k, v, conv_in = k[:, :, t:], v[:, :, t:], conv_in[:, :, t:]
            else:
                k, v, conv_in = k.gather(2, kv_index), v.gather(2, kv_index), conv_in.gather(2, conv_index)
            if slots is None:
                new_k.append(k), new_v.append(v), new_conv.append(conv_in)  # stack copies the slices
            else:
                put(state.keys[n], slots, k)
                put(state.values[n], slots, v)
                put(state.conv[n], slots, conv_in)
        new_len = torch.clamp(cache_len + valid, max=left)
        frames = take(state.frames, slots) + valid
        if slots is None:
            state.keys, state.values, state.conv = torch.stack(new_k), torch.stack(new_v), torch.stack(new_conv)
            state.cache_len, state.frames = new_len, frames
        else:
            put(state.cache_len, slots, new_len)
            put(state.frames, slots, frames)
        return x, valid
