"""Relative-position multi-head self-attention with a K/V cache (Transformer-XL style).

score(q, k) = ((q + u) . k + (q + v) . P[d]) / sqrt(head_dim), d = query_pos - key_pos.
P[d] = linear_pos(sinusoid(d)) does not depend on the audio: it is computed once per
(left context, block length) and reused for every chunk (see ``PositionTable``).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import EncoderConfig
from .linear import Linear

MASKED = -1e30  # finite, so a fully masked (padding) row stays NaN-free


def masked_value(dtype: torch.dtype) -> float:
    """The score of a hidden key: ``MASKED``, or half the most negative finite value of a dtype
    that cannot hold it (float16), so that adding a score to it stays finite."""
    return max(MASKED, torch.finfo(dtype).min / 2)


def sinusoids(distances: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoid of each relative distance: sin on even dims, cos on odd dims, base 10000."""
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float32, device=distances.device) / dim))
    angles = distances.float()[:, None] * inv_freq[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(len(distances), dim)


class RelPositionAttention(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        d, h = config.hidden_size, config.num_heads
        self.num_heads, self.head_dim = h, config.head_dim
        self.scale = self.head_dim**-0.5
        bias = config.attention_bias
        self.q_proj = Linear(d, d, bias=bias)
        self.k_proj = Linear(d, d, bias=bias)
        self.v_proj = Linear(d, d, bias=bias)
        self.o_proj = Linear(d, d, bias=bias)
        self.relative_k_proj = nn.Linear(d, d, bias=False)
        self.bias_u = nn.Parameter(torch.zeros(h, self.head_dim))
        self.bias_v = nn.Parameter(torch.zeros(h, self.head_dim))

    def project_positions(self, pe: torch.Tensor) -> torch.Tensor:
        """(n_dist, D) sinusoids -> (H, head_dim, n_dist) projected position keys."""
        p = self.relative_k_proj(pe).view(-1, self.num_heads, self.head_dim)
        return p.permute(1, 2, 0).contiguous()

    def forward(self, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                positions: torch.Tensor, rel_index: torch.Tensor, mask: torch.Tensor):
        """x (B, T, D); caches (B, H, L, hd); positions (H, hd, n_dist) for this block;
        rel_index (T, L+T) distance-table index; mask (B, 1, T, L+T) True where hidden.
        Returns output (B, T, D), keys and values (B, H, L+T, hd)."""
        b, t, _ = x.shape
        h, hd = self.num_heads, self.head_dim
        q = self.q_proj(x).view(b, t, h, hd).transpose(1, 2)
        k = torch.cat([k_cache, self.k_proj(x).view(b, t, h, hd).transpose(1, 2)], dim=2)
        v = torch.cat([v_cache, self.v_proj(x).view(b, t, h, hd).transpose(1, 2)], dim=2)
        bd = torch.matmul(q + self.bias_v[:, None, :], positions)  # (B, H, T, n_dist)
        bd = torch.gather(bd, 3, rel_index.expand(b, h, t, rel_index.shape[-1]))
        bias = (bd * self.scale).masked_fill(mask, masked_value(bd.dtype))
        out = nn.functional.scaled_dot_product_attention(
            q + self.bias_u[:, None, :], k, v, attn_mask=bias, scale=self.scale)
        out = self.o_proj(out.transpose(1, 2).reshape(b, t, h * hd))
        return out, k, v
