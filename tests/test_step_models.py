"""Tiny models built from a ModelConfig alone (no transformers) for the step tests; no tests here."""

from __future__ import annotations

import torch

from onepass.model.asr import NemotronASR
from onepass.model.config import EncoderConfig, FrontendConfig, ModelConfig


def tiny_config(prompt: bool = True, left: int = 8) -> ModelConfig:
    return ModelConfig(frontend=FrontendConfig(num_mel_bins=16),
                       encoder=EncoderConfig(input_size=16, hidden_size=32, num_layers=2, num_heads=2, ff_size=64,
                                             subsampling_channels=8, left_context=left, right_contexts=(3, 1, 0)),
                       vocab_size=33, blank_id=32, pred_hidden=24, num_prompts=8 if prompt else 0, prompt_hidden=16)


def tiny_model(prompt: bool = True, seed: int = 0, device: str = "cpu") -> NemotronASR:
    """Random weights, scaled so that the greedy decoder emits labels (not only blanks)."""
    torch.manual_seed(seed)
    model = NemotronASR(tiny_config(prompt)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, p.shape[-1] ** -0.5)
            elif "norm" not in name:
                p.normal_(0.0, 0.1)
        model.joint.head.bias[model.config.blank_id] += 1.0  # blanks, but not only blanks
    model.encoder.clear_tables()
    return model.to(device)
