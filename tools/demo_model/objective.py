"""The demo recipe's losses on top of onepass.training's RNN-T: an auxiliary CTC head on the encoder
output, frame-level warm-start targets (a fixed CTC path and espeak-ng phonemes, see targets.py), a
CTC-only start with a ramp into the RNN-T, prediction-net input dropout, FastEmit, and a decoder-only mode."""

from __future__ import annotations

import torch

from onepass.training.data import Batch
from onepass.training.objective import StepLoss, drop_history, encode, rnnt_from_encoder


def rnnt_weight(step: int, cfg) -> float:
    if step < cfg.rnnt_start_step:
        return 0.0
    return min(1.0, (step - cfg.rnnt_start_step + 1) / max(1, cfg.rnnt_ramp_steps)) if cfg.rnnt_start_step else 1.0


def warm_start_factor(step: int, cfg) -> float:
    """Multiplier of align_weight and phone_weight at ``step``: 1 until align_until, then down to align_floor."""
    if step < cfg.align_until:
        return 1.0
    f = min(1.0, (step - cfg.align_until) / max(1, cfg.align_ramp))
    return 1.0 - f * (1.0 - cfg.align_floor)


def _frame_ce(head: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    if target is None or not bool((target >= 0).any()):
        return torch.zeros((), device=head.device)
    return torch.nn.functional.cross_entropy(head[:, : target.shape[1]].reshape(-1, head.shape[-1]),
                                             target[:, : head.shape[1]].reshape(-1), ignore_index=-100)


class DemoObjective:
    """w_rnnt * RNN-T + ctc_weight * CTC + w_align * frame CE (CTC head) + w_phone * phoneme CE.

    ``heads_only``: set by the recipe while only the fresh heads learn (no RNN-T term, no backward
    through the model). Batches carry the frame targets in ``batch.extra`` ("align", "phones")."""

    def __init__(self, cfg, ctc_head: torch.nn.Module | None, phone_head: torch.nn.Module | None, seed: int):
        self.cfg, self.ctc_head, self.phone_head = cfg, ctc_head, phone_head
        self.g = torch.Generator().manual_seed(seed * 31 + 7)
        self.heads_only = False

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for h in (self.ctc_head, self.phone_head) if h is not None for p in h.parameters()]

    def state_dict(self) -> dict:
        out = {"g": self.g.get_state()}
        if self.ctc_head is not None:
            out["ctc"] = self.ctc_head.state_dict()
        if self.phone_head is not None:
            out["phone"] = self.phone_head.state_dict()
        return out

    def load_state_dict(self, state: dict) -> None:
        self.g.set_state(state["g"])
        for key, head in (("ctc", self.ctc_head), ("phone", self.phone_head)):
            if head is not None and key in state:
                head.load_state_dict(state[key])

    def __call__(self, model, batch: Batch, right_context: int, step: int) -> StepLoss:
        cfg = self.cfg
        with torch.set_grad_enabled(torch.is_grad_enabled() and not cfg.train_decoder_only and not self.heads_only):
            enc, enc_len = encode(model, batch.feats, batch.mask, batch.prompts, right_context)
        w_rnnt = 0.0 if self.heads_only else rnnt_weight(step, cfg)
        warm = warm_start_factor(step, cfg)
        w_align, w_phone = cfg.align_weight * warm, cfg.phone_weight * warm
        zero = torch.zeros((), device=enc.device)
        rnnt = ctc = ce = pce = zero
        n = int(batch.label_lengths.sum())
        if w_rnnt > 0:
            y_in = None
            if cfg.pred_input_drop and model.training:
                y_in = drop_history(batch.labels, cfg.pred_input_drop, int(model.config.blank_token_id), self.g)
            rnnt = rnnt_from_encoder(model, enc, enc_len, batch.labels, batch.label_lengths, pred_inputs=y_in,
                                     fastemit_weight=cfg.fastemit if model.training else 0.0).sum() / max(1, n)
        if self.ctc_head is not None:
            head = self.ctc_head(enc)
            lp = head.log_softmax(-1).transpose(0, 1)  # [T', B, V]
            ctc = torch.nn.functional.ctc_loss(lp, batch.labels, enc_len, batch.label_lengths,
                                               blank=model.config.blank_token_id, reduction="sum",
                                               zero_infinity=True) / max(1, n)
            if w_align > 0:
                ce = _frame_ce(head, batch.extra.get("align"))
        if self.phone_head is not None and w_phone > 0:
            pce = _frame_ce(self.phone_head(enc), batch.extra.get("phones"))
        loss = w_rnnt * rnnt + cfg.ctc_weight * ctc + w_align * ce + w_phone * pce
        return StepLoss(loss, n, {"rnnt": float(rnnt), "ctc": float(ctc), "align": float(ce), "phone": float(pce),
                                  "w_rnnt": w_rnnt, "w_align": w_align})


@torch.no_grad()
def audio_use(model, objective: DemoObjective, batch: Batch) -> tuple[float, float, float, float]:
    """(RNN-T, CTC) loss of a fixed batch with its own audio and with each clip's audio rolled to the next
    clip (eval mode, r = 13). The swapped losses must be clearly higher once the audio is used."""
    perm = torch.roll(torch.arange(batch.size), 1)
    swapped = Batch(batch.feats[perm], batch.mask[perm], batch.prompts, batch.labels, batch.label_lengths,
                    batch.audio_s)
    was, heads_only = model.training, objective.heads_only
    model.eval()
    objective.heads_only = False
    try:
        own = objective(model, batch, 13, 10**9)
        other = objective(model, swapped, 13, 10**9)
    finally:
        model.train(was)
        objective.heads_only = heads_only
    return own.metrics["rnnt"], own.metrics["ctc"], other.metrics["rnnt"], other.metrics["ctc"]
