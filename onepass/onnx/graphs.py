"""Export wrappers: the network's own modules, rearranged into graphs with explicit state.

``EncoderCore`` is the conformer stack + prompt MLP + encoder projection for onepass's ONNX
Runtime backend: the position projections, masks and validity rows are inputs (computed once
per block length on the torch side, like ``Encoder._position_table``), so one graph serves every
chunk size and block length and nothing audio-independent is recomputed per chunk.

``SherpaEncoder`` / ``SherpaDecoder`` / ``SherpaJoiner`` follow the sherpa-onnx NeMo transducer
contract (names, order, layouts; see docs in ``export.py``). The sherpa encoder is fed windows of
``window_size = chunk_shift = 8 (r+1)`` mel frames; everything a stream carries (projected K/V,
conv state, subsampling pending frames, and the 7 mel frames that belong to the next chunk)
travels in the two opaque float caches, so the graph computes exactly onepass's streaming chunks.
"""

from __future__ import annotations

import torch
from torch import nn

from ..model.asr import NemotronASR
from ..model.subsampling import SubsamplingState


class EncoderCore(nn.Module):
    """Conformer layers -> prompt MLP -> encoder projection, with K/V/conv caches in and out.

    Inputs: x (B, T, D) subsampled frames; valid (B,) real frames per row; keys, values
    (N, B, H, L, hd); conv (N, B, D, k-1); positions (N, H, hd, L+2T-1); rel_index (T, L+T);
    mask (B, 1, T, L+T) True where hidden; row_valid (B, T, 1) 1/0; prompt (B,) (prompt models).
    Outputs: enc (B, T, D) after the prompt MLP, proj (B, T, pred_hidden), new keys, values, conv.
    """

    def __init__(self, model: NemotronASR, stacked: bool = True):
        super().__init__()
        cfg = model.config.encoder
        self.stacked = stacked  # False: the new caches come back as per-layer lists
        self.layers = model.encoder.layers
        self.prompt_projector = model.prompt_projector
        self.encoder_projector = model.encoder_projector
        self.left, self.heads, self.head_dim = cfg.left_context, cfg.num_heads, cfg.head_dim
        self.hidden, self.ks = cfg.hidden_size, cfg.conv_kernel_size - 1

    def forward(self, x, valid, keys, values, conv, positions, rel_index, mask, row_valid, prompt=None):
        b, t = x.shape[0], x.shape[1]
        dev = x.device
        # keep the last `left` keys/values and k-1 conv inputs ending at each row's last valid frame:
        # whole rows (head_dim / hidden floats) gathered from the flattened tensors, which ONNX
        # Runtime copies ~5x faster than a GatherElements over every element
        heads = torch.arange(b * self.heads, device=dev).reshape(b, self.heads, 1)
        # (the Gather's output has the index's shape + the row: (B, H, L, hd) lands in the bound
        # graph output without a reshape, which ONNX Runtime would run as one more copy)
        kv_rows = heads * (self.left + t) + valid[:, None, None] + torch.arange(self.left, device=dev)
        conv_rows = (torch.arange(b, device=dev)[:, None] * (self.ks + t) + valid[:, None]
                     + torch.arange(self.ks, device=dev)[None, :])
        new_k, new_v, new_conv = [], [], []
        for n, layer in enumerate(self.layers):
            layer.conv.channels_last = True
            try:
                x, k, v, conv_in = layer(x, keys[n], values[n], conv[n], positions[n], rel_index, mask, row_valid)
            finally:
                layer.conv.channels_last = False
            new_k.append(k.reshape(-1, self.head_dim)[kv_rows])
            new_v.append(v.reshape(-1, self.head_dim)[kv_rows])
            new_conv.append(conv_in.reshape(-1, self.hidden)[conv_rows].transpose(1, 2))
        if self.prompt_projector is not None:
            x = self.prompt_projector(x, prompt)
        if self.stacked:
            new_k, new_v, new_conv = torch.stack(new_k), torch.stack(new_v), torch.stack(new_conv)
        return x, self.encoder_projector(x), new_k, new_v, new_conv


PER_LAYER = ("keys", "values", "conv", "positions")  # inputs the onepass core graph takes per layer
PER_LAYER_OUT = ("keys_next", "values_next", "conv_next")


class LayerwiseCore(nn.Module):
    """``EncoderCore`` with one graph input and output per layer for each cache and position
    table (``keys_0`` ... ``conv_next_{N-1}``): the backend binds views of its stacked state
    tensors, so ONNX Runtime does not split the caches on the way in nor stack them on the way
    out (two full copies of every cache per step; 15 % of an int8 step at 160 ms x 6 streams).

    Inputs: x, valid, rel_index, mask, row_valid, then ``PER_LAYER`` x N, then prompt (prompt
    models). Outputs: enc, proj, then ``PER_LAYER_OUT`` x N."""

    def __init__(self, model: NemotronASR):
        super().__init__()
        self.core = EncoderCore(model, stacked=False)
        self.n = model.config.encoder.num_layers

    def forward(self, x, valid, rel_index, mask, row_valid, *rest):
        n = self.n
        keys, values, conv, positions = (rest[i * n:(i + 1) * n] for i in range(len(PER_LAYER)))
        prompt = rest[len(PER_LAYER) * n] if len(rest) > len(PER_LAYER) * n else None
        enc, proj, k, v, c = self.core(x, valid, keys, values, conv, positions, rel_index, mask, row_valid, prompt)
        return (enc, proj, *k, *v, *c)


def block_inputs(model: NemotronASR, t: int, right_context: int, valid: torch.Tensor, cache_len: torch.Tensor):
    """The audio-independent and mask inputs of ``EncoderCore`` for a block of t frames."""
    enc = model.encoder
    left = model.config.encoder.left_context
    positions, rel_index = enc._position_table(t)
    key_pos = torch.arange(left + t, device=valid.device)[None, :]
    key_hidden = (key_pos < left - cache_len[:, None]) | (key_pos >= left + valid[:, None])
    mask = (enc._chunk_mask(t, right_context + 1)[None] | key_hidden[:, None, :])[:, None]
    row_valid = (torch.arange(t, device=valid.device)[None, :] < valid[:, None]).float()[..., None]
    return positions, rel_index, mask, row_valid


class SherpaLayout:
    """How onepass's streaming state is packed into sherpa-onnx's two float caches.

    cache_last_channel (B, N, 2L, D): projected keys then values of the last L frames.
    cache_last_time (B, N, D, (k-1) + E): conv module left state, then E extra columns holding,
    flattened, the subsampling's pending frames (one per stage, aligned state) and the
    ``factor - 1`` mel frames a window carries into the next chunk.
    """

    def __init__(self, model: NemotronASR):
        cfg = model.config.encoder
        self.n, self.left, self.d = cfg.num_layers, cfg.left_context, cfg.hidden_size
        self.h, self.hd, self.ks = cfg.num_heads, cfg.head_dim, cfg.conv_kernel_size - 1
        self.mels, self.carry = cfg.input_size, cfg.subsampling_factor - 1
        state = model.encoder.subsampling.initial_state(1, aligned=True)
        self.pending_shapes = [tuple(p.shape[1:]) for p in state.pending]
        self.extra_floats = self.carry * self.mels + sum(int(torch.Size(s).numel()) for s in self.pending_shapes)
        per_col = self.n * self.d
        self.extra_cols = -(-self.extra_floats // per_col)

    @property
    def channel_dims(self) -> tuple[int, int, int]:
        return self.n, 2 * self.left, self.d

    @property
    def time_dims(self) -> tuple[int, int, int]:
        return self.n, self.d, self.ks + self.extra_cols

    def unpack(self, clc: torch.Tensor, clt: torch.Tensor):
        b = clc.shape[0]
        kv = clc.reshape(b, self.n, 2, self.left, self.h, self.hd).permute(2, 1, 0, 4, 3, 5)
        keys, values = kv[0], kv[1]  # (N, B, H, L, hd)
        conv = clt[..., :self.ks].transpose(0, 1)  # (N, B, D, k-1)
        extra = clt[..., self.ks:].reshape(b, -1)
        pos = self.carry * self.mels
        carry = extra[:, :pos].reshape(b, self.carry, self.mels)
        pending = []
        for shape in self.pending_shapes:
            size = int(torch.Size(shape).numel())
            pending.append(extra[:, pos:pos + size].reshape(b, *shape))
            pos += size
        return keys, values, conv, carry, pending

    def pack(self, keys, values, conv, carry, pending):
        b = carry.shape[0]
        kv = torch.stack([keys, values]).permute(2, 1, 0, 4, 3, 5)  # (B, N, 2, L, H, hd)
        clc = kv.reshape(b, self.n, 2 * self.left, self.d)
        flat = torch.cat([carry.reshape(b, -1)] + [p.reshape(b, -1) for p in pending], dim=1)
        pad = self.extra_cols * self.n * self.d - flat.shape[1]
        flat = torch.cat([flat, flat.new_zeros(b, pad)], dim=1).reshape(b, self.n, self.d, self.extra_cols)
        clt = torch.cat([conv.transpose(0, 1), flat], dim=3)
        return clc, clt


class SherpaEncoder(nn.Module):
    """sherpa-onnx NeMo streaming encoder for one chunk size (right context r).

    Window k carries mel frames [8(r+1)k, 8(r+1)(k+1)). onepass's chunk k is the 7 frames carried
    from the previous window (zeros before the first, where they are the first chunk's lead) and
    the first 8(r+1)-7 frames of this window; the last 7 are carried. A row with
    cache_last_channel_len == 0 is a stream's first chunk (also after sherpa's reset())."""

    def __init__(self, model: NemotronASR, right_context: int):
        super().__init__()
        self.model = model
        self.core = EncoderCore(model)
        self.layout = SherpaLayout(model)
        self.r = right_context
        cfg = model.config.encoder
        self.window = cfg.subsampling_factor * (right_context + 1)
        self.t = right_context + 1
        positions, rel_index = model.encoder._position_table(self.t)
        self.register_buffer("positions", positions.clone(), persistent=False)
        self.register_buffer("rel_index", rel_index.clone(), persistent=False)
        self.register_buffer("chunk_mask", model.encoder._chunk_mask(self.t, self.t).clone(), persistent=False)

    def forward(self, audio_signal, length, cache_last_channel, cache_last_time, cache_last_channel_len,
                prompt_index=None):
        lay = self.layout
        keys, values, conv, carry, pending = lay.unpack(cache_last_channel, cache_last_time)
        mel = audio_signal.transpose(1, 2)  # (B, W, F)
        cut = self.window - lay.carry
        chunk = torch.cat([carry, mel[:, :cut]], dim=1)
        cache_len = cache_last_channel_len
        first = cache_len == 0
        lead = torch.where(first, torch.full_like(cache_len, lay.carry), torch.zeros_like(cache_len))
        # sherpa always passes length = window_size; a shorter window is not a supported input
        valid = torch.clamp(length, max=self.window) - lead
        zeros = torch.zeros_like(cache_len)
        sub = SubsamplingState(list(pending), [zeros] * len(pending), [zeros] * len(pending))
        x, n = self.model.encoder.subsampling(chunk, valid, torch.zeros_like(first), sub, lead)
        left = lay.left
        key_pos = torch.arange(left + self.t, device=x.device)[None, :]
        key_hidden = (key_pos < left - cache_len[:, None]) | (key_pos >= left + n[:, None])
        mask = (self.chunk_mask[None] | key_hidden[:, None, :])[:, None]
        row_valid = (torch.arange(self.t, device=x.device)[None, :] < n[:, None]).to(x.dtype)[..., None]
        prompt = prompt_index if self.model.prompt_projector is not None else None
        enc, _, k, v, c = self.core(x, n, keys, values, conv, self.positions, self.rel_index, mask, row_valid,
                                    prompt)
        clc, clt = lay.pack(k, v, c, mel[:, cut:], sub.pending)
        return (enc.transpose(1, 2), n, clc, clt, torch.clamp(cache_len + n, max=left))


class SherpaDecoder(nn.Module):
    """targets (B, 1) int32, target_length (B,) int32, states (layers, B, H) x2 ->
    outputs (B, H, 1) (prediction output after its projection), lengths, states."""

    def __init__(self, model: NemotronASR):
        super().__init__()
        self.decoder = model.decoder

    def forward(self, targets, target_length, states_h, states_c):
        pred, h, c = self.decoder(targets[:, 0].long(), states_h, states_c)
        return pred[:, :, None], target_length, h, c


class SherpaJoiner(nn.Module):
    """encoder_outputs (B, D, 1) (after the prompt MLP), decoder_outputs (B, H, 1) -> logits (B, 1, 1, V)."""

    def __init__(self, model: NemotronASR):
        super().__init__()
        self.encoder_projector = model.encoder_projector
        self.joint = model.joint

    def forward(self, encoder_outputs, decoder_outputs):
        # (B, 1, D) rows: the linears export as MatMul (not Gemm), which int8 exports quantize
        enc = self.encoder_projector(encoder_outputs.transpose(1, 2))
        return self.joint(enc, decoder_outputs.transpose(1, 2))[:, :, None, :]
