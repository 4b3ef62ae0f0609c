"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """Exponential moving average of a model's floating-point weights and buffers (integer buffers are
    copied), updated in place after each optimizer step."""

    def __init__(self, model: torch.nn.Module, decay: float, state: dict[str, torch.Tensor] | None = None):
        self.decay = decay
        live = model.state_dict()
        self.state = {k: (state[k] if state is not None else v).detach().clone().to(v.device)
                      for k, v in live.items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():  # fresh views: model.cpu() / .to() swap the storage
            avg = self.state[k]
            if avg.is_floating_point():
                avg.lerp_(v, 1.0 - self.decay)
            else:
                avg.copy_(v)

    def model_copy(self, model: torch.nn.Module) -> torch.nn.Module:
        """A CPU copy of ``model`` (eval mode) holding the averaged weights."""
        out = copy.deepcopy(model).cpu()
        out.load_state_dict(self.state)
        return out.eval()
