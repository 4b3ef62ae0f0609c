"""The training forward pass: the encoder under the chunked-limited mask of one right context, the
prediction net over the targets, and the RNN-T loss (``loss.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .data import Batch
from .loss import DEFAULT_MAX_JOINT_ELEMENTS, collapsed_kl, fastemit, lattice_log_probs, rnnt_nll


@dataclass
class StepLoss:
    """What one batch contributes: the loss to minimise and numbers to log."""

    loss: torch.Tensor  # scalar, what backward() runs on
    labels: int  # target tokens in the batch
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. {"rnnt": 1.23}


def encode(model, feats: torch.Tensor, mask: torch.Tensor, prompts: torch.Tensor | None,
           right_context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(joint-ready encoder output [B, T', H], valid frames [B]) with ``right_context`` frames of lookahead
    (a frame sees its chunk of r+1 frames and the left context: what streaming at that chunk size sees)."""
    kwargs = {"prompt_ids": prompts} if prompts is not None and hasattr(model, "prompt_projector") else {}
    enc = model.get_audio_features(input_features=feats, attention_mask=mask, num_lookahead_tokens=right_context,
                                   **kwargs).pooler_output
    enc_len = model.encoder._get_output_attention_mask(mask, target_length=enc.shape[1]).sum(-1)
    return enc, enc_len


def predict(model, labels: torch.Tensor, blank: int, inputs: torch.Tensor | None = None) -> torch.Tensor:
    """Prediction net over [start, labels...] -> [B, U+1, H] (``inputs``: other history tokens, e.g. with
    some replaced by the start symbol)."""
    start = torch.full((labels.shape[0], 1), blank, dtype=torch.long, device=labels.device)
    return model.decoder(torch.cat([start, labels if inputs is None else inputs], dim=1))


def lattice_from_encoder(model, enc: torch.Tensor, labels: torch.Tensor,
                         max_joint_elements: int = DEFAULT_MAX_JOINT_ELEMENTS,
                         pred_inputs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(blank log-probs [B, T, U+1], label log-probs [B, T, U]) of the RNN-T lattice given the encoder output."""
    blank = int(model.config.blank_token_id)
    dec = predict(model, labels, blank, pred_inputs)

    def joint(e, d):
        return model.joint(decoder_hidden_states=d, encoder_hidden_states=e)

    return lattice_log_probs(joint, enc, dec, labels, blank, int(model.config.vocab_size), max_joint_elements)


def rnnt_from_encoder(model, enc: torch.Tensor, enc_len: torch.Tensor, labels: torch.Tensor,
                      label_lengths: torch.Tensor, max_joint_elements: int = DEFAULT_MAX_JOINT_ELEMENTS,
                      pred_inputs: torch.Tensor | None = None, fastemit_weight: float = 0.0) -> torch.Tensor:
    """Per-utterance RNN-T NLL [B] given the encoder output (``fastemit_weight``: see ``loss.fastemit``)."""
    blank_lp, emit_lp = lattice_from_encoder(model, enc, labels, max_joint_elements, pred_inputs)
    return rnnt_nll(blank_lp, fastemit(emit_lp, fastemit_weight), enc_len, label_lengths)


def to_device(batch: Batch, device: torch.device) -> Batch:
    extra = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.extra.items()}
    return Batch(batch.feats.to(device), batch.mask.to(device), batch.prompts.to(device), batch.labels.to(device),
                 batch.label_lengths.to(device), batch.audio_s, extra)


def drop_history(labels: torch.Tensor, p: float, blank: int, g: torch.Generator) -> torch.Tensor:
    """Prediction-net inputs with each history token replaced by the start symbol (blank) with probability
    ``p`` (the targets stay): the prediction net learns to lean on the audio rather than on the text
    before, which keeps a small domain's word order from becoming a language model."""
    drop = (torch.rand(labels.shape, generator=g) < p).to(labels.device)
    return torch.where(drop, torch.full_like(labels, blank), labels)


class Distillation:
    """Distillation toward the starting model on what it already knows (``--distill``): for each utterance
    whose transcript the starting model (``teacher``, a frozen copy) already explains well, at most
    ``max_nll`` nats per label, the KL divergence from the teacher's to the trained model's probabilities
    of blank, the next label and anything else on every lattice node (``loss.collapsed_kl``: the two
    numbers per node the RNN-T loss keeps anyway), averaged over those utterances. Replay lines of the
    model's own data are held to what the model predicted on them, not only to their text; the new data
    (which the starting model gets wrong) is left to the RNN-T loss."""

    def __init__(self, teacher: torch.nn.Module, weight: float, max_nll: float = 1.0):
        self.teacher = teacher.eval().requires_grad_(False)
        self.weight, self.max_nll = weight, max_nll

    @torch.no_grad()
    def _teacher(self, batch: Batch, right_context: int, max_joint_elements: int):
        enc, enc_len = encode(self.teacher, batch.feats, batch.mask, batch.prompts, right_context)
        blank_lp, emit_lp = lattice_from_encoder(self.teacher, enc, batch.labels, max_joint_elements)
        per_label = rnnt_nll(blank_lp, emit_lp, enc_len, batch.label_lengths) / batch.label_lengths.clamp(min=1)
        return blank_lp, emit_lp, per_label < self.max_nll

    def __call__(self, batch: Batch, right_context: int, blank_lp: torch.Tensor, emit_lp: torch.Tensor,
                 frame_lengths: torch.Tensor, max_joint_elements: int = DEFAULT_MAX_JOINT_ELEMENTS
                 ) -> tuple[torch.Tensor, float]:
        """(the mean KL over the kept utterances, a scalar; the fraction of the batch kept)."""
        t_blank, t_emit, keep = self._teacher(batch, right_context, max_joint_elements)
        kl = collapsed_kl(t_blank, t_emit, blank_lp, emit_lp, frame_lengths, batch.label_lengths)
        kept = keep.to(kl.dtype)
        return (kl * kept).sum() / kept.sum().clamp(min=1), float(kept.mean())


class RNNTObjective:
    """The RNN-T loss per target token (summed NLL / labels) of a batch at one right context, with optional
    prediction-net input dropout (``pred_input_drop``), FastEmit (``fastemit_weight``, ``loss.fastemit``) and
    distillation toward the starting model (``distill``, ``Distillation``), all in training mode only."""

    def __init__(self, max_joint_elements: int = DEFAULT_MAX_JOINT_ELEMENTS, pred_input_drop: float = 0.0,
                 seed: int = 0, distill: Distillation | None = None, fastemit_weight: float = 0.0):
        self.max_joint_elements, self.pred_input_drop = max_joint_elements, pred_input_drop
        self.fastemit_weight = fastemit_weight
        self.distill = distill
        self.g = torch.Generator().manual_seed(seed * 31 + 7)

    def parameters(self) -> list[torch.nn.Parameter]:
        return []  # no parameters of its own

    def state_dict(self) -> dict:
        return {"g": self.g.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.g.set_state(state["g"])

    def __call__(self, model, batch: Batch, right_context: int, step: int) -> StepLoss:
        enc, enc_len = encode(model, batch.feats, batch.mask, batch.prompts, right_context)
        inputs = None
        if self.pred_input_drop and model.training:
            inputs = drop_history(batch.labels, self.pred_input_drop, int(model.config.blank_token_id), self.g)
        blank_lp, emit_lp = lattice_from_encoder(model, enc, batch.labels, self.max_joint_elements, inputs)
        nll = rnnt_nll(blank_lp, fastemit(emit_lp, self.fastemit_weight if model.training else 0.0), enc_len,
                       batch.label_lengths)
        n = int(batch.label_lengths.sum())
        loss = nll.sum() / max(1, n)
        metrics = {"rnnt": float(loss.detach())}
        if self.distill is not None and model.training:
            kd, kept = self.distill(batch, right_context, blank_lp, emit_lp, enc_len, self.max_joint_elements)
            loss = loss + self.distill.weight * kd
            metrics.update(distill=float(kd.detach()), distilled=kept)
        return StepLoss(loss, n, metrics)
