"""The whole network: front end, encoder, prompt, encoder projection, prediction net, joint."""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .encoder import Encoder, EncoderState
from .frontend import LogMel
from .linear import Linear
from .transducer import Joint, PredictionNet, PromptProjector


class NemotronASR(nn.Module):
    """Pure tensors in, tensors out. Decoding and streaming live outside (``onepass.decoding``,
    ``onepass.streaming``)."""

    def __init__(self, config: ModelConfig, filterbank: torch.Tensor | None = None,
                 window: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        self.frontend = LogMel(config.frontend, filterbank, window)
        self.encoder = Encoder(config.encoder)
        self.prompt_projector = PromptProjector(config) if config.has_prompt else None
        self.encoder_projector = Linear(config.encoder.hidden_size, config.pred_hidden)
        self.decoder = PredictionNet(config)
        self.joint = Joint(config)

    def encode(self, mel: torch.Tensor, mel_valid: torch.Tensor, final: torch.Tensor,
               state: EncoderState, right_context: int, prompt: torch.Tensor | None,
               lead: torch.Tensor | None = None, slots=None, steady: bool = False):
        """Encode a block; returns (encoder output after the prompt MLP (B, T, D),
        joint-ready projection (B, T, pred_hidden), valid counts (B,)). ``slots``: the rows of
        ``state`` (a state arena) these streams use, updated in place; ``steady``: see ``Encoder.forward``."""
        x, valid = self.encoder(mel, mel_valid, final, state, right_context, lead, slots, steady)
        if self.prompt_projector is not None:
            if prompt is None:
                raise ValueError("this model needs a prompt index per stream")
            x = self.prompt_projector(x, prompt)
        return x, self.encoder_projector(x), valid

    def cast(self, dtype: torch.dtype, decoder_dtype: torch.dtype | None = None) -> "NemotronASR":
        """Weights to ``dtype``, the prediction net and joint to ``decoder_dtype``: by default
        float32 next to a 16-bit encoder (one changed label changes the prediction net's state and
        so the rest of the sequence; measured on the demo model's held-out clips at 160 ms, token
        agreement with float32 is 99.8 % with a float32 decoder and 98.0 % with all bfloat16, for
        a few kilobytes of state per stream), else ``dtype``. The front end stays float32: features
        are always computed in float32, and its window and filterbank rounded to a lower precision
        would change them (by up to 0.4 % in bfloat16). Call ``encoder.clear_tables()`` afterwards,
        as after any change of dtype."""
        if decoder_dtype is None:
            decoder_dtype = torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype
        for name, child in self.named_children():
            if name != "frontend":
                child.to(decoder_dtype if name in ("decoder", "joint") else dtype)
        return self

    @property
    def encoder_dtype(self) -> torch.dtype:
        """What the encoder computes in (the step's features are cast to it)."""
        return self.encoder_projector.weight.dtype

    def prepack(self) -> int:
        """Reorder the encoder, prompt and joint weights for oneDNN (CPU float32 inference):
        1.4-1.8x faster GEMMs for the few-row blocks of streaming, at the cost of a second copy
        of those weights (~2.5 GB for the 0.6B models). Outputs agree with the dense path to
        float rounding. Weights loaded or edited afterwards fall back to the dense path until
        ``prepack`` is called again. Returns the number of layers packed."""
        return sum(m.prepack() for m in self.modules() if isinstance(m, Linear))

    def decoder_initial_state(self, batch: int):
        cfg = self.config
        p = self.joint.head.weight
        h = torch.zeros(cfg.pred_layers, batch, cfg.pred_hidden, device=p.device, dtype=p.dtype)
        return h, h.clone()
