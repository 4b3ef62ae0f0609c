"""Language prompt MLP, LSTM prediction network and joint network of the RNN-T."""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .linear import Linear, int8_linear, int8_pack


class PromptProjector(nn.Module):
    """[enc, one_hot(lang)] -> Linear -> ReLU -> Linear, replacing the encoder output.

    The one-hot half of the first Linear is a constant per language, so it is stored as a
    per-language bias table (``language_bias``, (num_prompts, hidden)) and added to the
    encoder half: same result, no concatenation per frame."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        d = config.encoder.hidden_size
        self.linear_1 = Linear(d, config.prompt_hidden)
        self.language_bias = nn.Parameter(torch.zeros(config.num_prompts, config.prompt_hidden))
        self.linear_2 = Linear(config.prompt_hidden, d)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """x (B, T, D); prompt (B,) slot indices."""
        h = self.linear_1(x) + self.language_bias[prompt][:, None, :]
        return self.linear_2(torch.relu(h))


class LSTMStack(nn.Module):
    """Multi-layer LSTM evaluated one step at a time with plain GEMMs (parameter names and
    gate order i, f, g, o as torch.nn.LSTM)."""

    def __init__(self, size: int, layers: int):
        super().__init__()
        self.size, self.num_layers = size, layers
        for n in range(layers):
            self.register_parameter(f"weight_ih_l{n}", nn.Parameter(torch.empty(4 * size, size)))
            self.register_parameter(f"weight_hh_l{n}", nn.Parameter(torch.empty(4 * size, size)))
            self.register_parameter(f"bias_ih_l{n}", nn.Parameter(torch.zeros(4 * size)))
            self.register_parameter(f"bias_hh_l{n}", nn.Parameter(torch.zeros(4 * size)))
        bound = size**-0.5
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        self._int8: list | None = None

    def quantize_int8(self) -> bool:
        """Inference from int8 weights (``int8_linear``), input and hidden GEMMs fused into one per
        layer ([W_ih | W_hh] on [x, h]); for the quantized ONNX Runtime backends. Load weights first."""
        packs = []
        for n in range(self.num_layers):
            w = torch.cat([getattr(self, f"weight_ih_l{n}"), getattr(self, f"weight_hh_l{n}")], dim=1)
            packs.append(int8_pack(w, getattr(self, f"bias_ih_l{n}") + getattr(self, f"bias_hh_l{n}")))
        self._int8 = packs if all(p is not None for p in packs) else None
        return self._int8 is not None

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """x (B, size); h, c (layers, B, size) -> output (B, size), new h, new c."""
        hs, cs = [], []
        int8 = self._int8 if not torch.is_grad_enabled() and x.dtype == torch.float32 else None
        for n in range(self.num_layers):
            if int8 is not None:
                gates = int8_linear(torch.cat([x, h[n]], dim=-1), int8[n])
            else:
                gates = (nn.functional.linear(x, getattr(self, f"weight_ih_l{n}"), getattr(self, f"bias_ih_l{n}"))
                         + nn.functional.linear(h[n], getattr(self, f"weight_hh_l{n}"),
                                                getattr(self, f"bias_hh_l{n}")))
            i, f, g, o = gates.chunk(4, dim=-1)
            c_new = torch.sigmoid(f) * c[n] + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(c_new)
            hs.append(x)
            cs.append(c_new)
        return x, torch.stack(hs), torch.stack(cs)


class PredictionNet(nn.Module):
    """Embedding -> LSTM -> Linear. The blank id is the start symbol."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embedding = nn.Embedding(config.vocab_size, config.pred_hidden)
        self.lstm = LSTMStack(config.pred_hidden, config.pred_layers)
        self.decoder_projector = Linear(config.pred_hidden, config.pred_hidden)

    def quantize_int8(self) -> bool:
        """The LSTM and the output projection on int8 weights (see ``LSTMStack.quantize_int8``)."""
        return self.lstm.quantize_int8() and self.decoder_projector.quantize_int8()

    def forward(self, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        out, h, c = self.lstm(self.embedding(tokens), h, c)
        return self.decoder_projector(out), h, c


class Joint(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.head = Linear(config.pred_hidden, config.vocab_size)

    def forward(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """enc, pred (..., pred_hidden) already projected -> logits (..., vocab)."""
        return self.head(torch.relu(enc + pred))
