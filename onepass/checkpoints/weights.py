"""What a checkpoint reader returns, and building the network from it with shape checks."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..errors import OnePassError
from ..model.asr import NemotronASR
from ..model.config import ModelConfig
from ..model.frontend import LogMel
from ..tokenizer import Tokenizer


IGNORABLE = re.compile(r"(inv_freq|num_batches_tracked|position_ids)$")


@dataclass
class LoadedCheckpoint:
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]  # in onepass names (see to_onepass_names)
    tokenizer: Tokenizer
    filterbank: torch.Tensor | None = None  # stored mel filterbank (NeMo), else computed
    window: torch.Tensor | None = None  # stored analysis window (NeMo), else Hann


def to_onepass_names(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Hugging Face layout -> onepass: pointwise convs become GEMM weights, and the prompt
    MLP's one-hot columns become a per-language bias table."""
    out = {}
    d = config.encoder.hidden_size
    for key, value in state.items():
        if key.endswith(("conv.pointwise_conv1.weight", "conv.pointwise_conv2.weight")) and value.dim() == 3:
            value = value[..., 0]
        if key == "prompt_projector.linear_1.weight":
            if value.shape[1] != d + config.num_prompts:
                raise OnePassError(f"prompt MLP input width {value.shape[1]} != hidden {d} + prompts "
                                   f"{config.num_prompts}: checkpoint and config disagree")
            out["prompt_projector.language_bias"] = value[:, d:].t().contiguous()
            value = value[:, :d].contiguous()
        out[key] = value
    return out


def build_model(loaded: LoadedCheckpoint, where: str) -> NemotronASR:
    with torch.device("meta"):
        probe = NemotronASR(loaded.config)
    expected = {k: v.shape for k, v in probe.state_dict().items()}
    state = {k: v for k, v in loaded.state_dict.items() if k in expected}
    unexpected = sorted(k for k in loaded.state_dict if k not in expected and not IGNORABLE.search(k))
    if unexpected:
        raise OnePassError(f"checkpoint {where} has {len(unexpected)} tensors this config does not use "
                           f"(e.g. {', '.join(unexpected[:4])}): config and weights disagree")
    missing = sorted(set(expected) - set(state))
    bad = [f"{k}: checkpoint {tuple(state[k].shape)} vs config {tuple(expected[k])}"
           for k in state if tuple(state[k].shape) != tuple(expected[k])]
    if missing or bad:
        detail = "; ".join(bad[:5] + [f"missing {k}" for k in missing[:8]])
        raise OnePassError(f"checkpoint {where} does not match its config ({len(missing)} missing, "
                           f"{len(bad)} mis-shaped tensors): {detail}")
    probe.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                          strict=True, assign=True)
    probe.frontend = LogMel(loaded.config.frontend, loaded.filterbank, loaded.window)
    return probe.eval()
