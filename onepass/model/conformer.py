"""One cache-aware FastConformer layer: FF/2, rel-pos MHSA, causal conv module, FF/2, LN."""

from __future__ import annotations

import torch
from torch import nn

from .attention import RelPositionAttention
from .config import EncoderConfig
from .linear import Linear


class FeedForward(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.linear1 = Linear(config.hidden_size, config.ff_size, bias=config.attention_bias)
        self.linear2 = Linear(config.ff_size, config.hidden_size, bias=config.attention_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(nn.functional.silu(self.linear1(x)))


class ConvModule(nn.Module):
    """Pointwise (as GEMM) -> GLU -> causal depthwise conv with left state -> LN -> SiLU -> pointwise."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        d, k = config.hidden_size, config.conv_kernel_size
        self.pointwise_conv1 = Linear(d, 2 * d, bias=config.conv_bias)
        self.depthwise_conv = nn.Conv1d(d, d, k, groups=d, bias=config.conv_bias)
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.pointwise_conv2 = Linear(d, d, bias=config.conv_bias)

    # The ONNX export sets this: the depthwise conv as k shifted multiply-adds over (B, T, D), which
    # ONNX Runtime runs ~10x faster than its grouped Conv at streaming sizes
    # (docs/history/benchmarks-log-2026-12.md).
    channels_last = False

    def forward(self, x: torch.Tensor, conv_cache: torch.Tensor, row_valid: torch.Tensor):
        """x (B, T, D); conv_cache (B, D, k-1); row_valid (B, T, 1) float 1/0.
        Returns output (B, T, D) and the conv input with its left state: (B, D, k-1+T), or
        (B, k-1+T, D) when ``channels_last``."""
        a, gate = self.pointwise_conv1(x).chunk(2, dim=-1)
        h = (a * torch.sigmoid(gate)) * row_valid
        if self.channels_last:
            h = torch.cat([conv_cache.transpose(1, 2), h], dim=1)
            out = self._depthwise_channels_last(h)
        else:
            h = torch.cat([conv_cache, h.transpose(1, 2)], dim=2)
            out = self.depthwise_conv(h).transpose(1, 2)
        out = self.pointwise_conv2(nn.functional.silu(self.norm(out)))
        return out, h

    def _depthwise_channels_last(self, h: torch.Tensor) -> torch.Tensor:
        """(B, k-1+T, D) -> (B, T, D): out[t] = sum_j w[j] * h[t + j] (+ bias), per channel."""
        conv = self.depthwise_conv
        k = conv.kernel_size[0]
        t = h.shape[1] - (k - 1)
        taps = (torch.arange(t, device=h.device)[:, None] + torch.arange(k, device=h.device)[None, :]).reshape(-1)
        windows = h.index_select(1, taps).reshape(h.shape[0], t, k, h.shape[2])
        out = (windows * conv.weight[:, 0].t()).sum(dim=2)
        return out if conv.bias is None else out + conv.bias


class ConformerLayer(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        d, eps = config.hidden_size, config.layer_norm_eps
        self.feed_forward1 = FeedForward(config)
        self.self_attn = RelPositionAttention(config)
        self.conv = ConvModule(config)
        self.feed_forward2 = FeedForward(config)
        self.norm_feed_forward1 = nn.LayerNorm(d, eps=eps)
        self.norm_self_att = nn.LayerNorm(d, eps=eps)
        self.norm_conv = nn.LayerNorm(d, eps=eps)
        self.norm_feed_forward2 = nn.LayerNorm(d, eps=eps)
        self.norm_out = nn.LayerNorm(d, eps=eps)

    def forward(self, x, k_cache, v_cache, conv_cache, positions, rel_index, mask, row_valid):
        x = x + 0.5 * self.feed_forward1(self.norm_feed_forward1(x))
        att, k, v = self.self_attn(self.norm_self_att(x), k_cache, v_cache, positions, rel_index, mask)
        x = x + att
        conv, conv_in = self.conv(self.norm_conv(x), conv_cache, row_valid)
        x = x + conv
        x = x + 0.5 * self.feed_forward2(self.norm_feed_forward2(x))
        return self.norm_out(x), k, v, conv_in
