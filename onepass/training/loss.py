"""RNN-T loss in pure PyTorch that never holds the whole joint output.

The joint's logits are (batch x frames x (labels+1) x vocab): at the real vocabulary of 13,088 a batch
of 8 utterances of 8 s with 40 labels is 8 x 100 x 41 x 13088 = 430 M floats (1.7 GB), and log-softmax
and the gradient need two more of it. Only two numbers per lattice node matter to the loss: the
log-probability of blank and of the next label. ``lattice_log_probs`` computes the joint a few frames
at a time and keeps just those two (B, T, U+1) tensors; under autograd each slice is checkpointed, so
the backward pass recomputes one slice of logits at a time. Peak memory is one slice, chosen by
``max_joint_elements``.

The forward algorithm then runs over time only: within one frame the label recursion
alpha[t, u] = logaddexp(alpha[t-1, u] + blank[t-1, u], alpha[t, u-1] + emit[t, u-1]) is a prefix sum in
log space, solved exactly with ``torch.logcumsumexp``. Autograd gives the gradients.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint

JointFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (enc [B,t,1,H], dec [B,1,U+1,H]) -> logits
DEFAULT_MAX_JOINT_ELEMENTS = 1 << 25  # 32 M logits per slice (128 MB in float32)


def _slice_log_probs(joint: JointFn, enc: torch.Tensor, dec: torch.Tensor, targets: torch.Tensor,
                     blank: int) -> tuple[torch.Tensor, torch.Tensor]:
    logits = joint(enc[:, :, None, :], dec[:, None, :, :])  # [B, t, U+1, V]
    logp = logits.float().log_softmax(-1)
    B, t, U1, V = logp.shape
    blank_lp = logp[..., blank]  # [B, t, U+1]
    idx = targets.long().clamp(0, V - 1)[:, None, :, None].expand(B, t, U1 - 1, 1)
    emit_lp = logp[:, :, : U1 - 1, :].gather(-1, idx).squeeze(-1)  # [B, t, U]
    return blank_lp, emit_lp


def frames_per_slice(batch: int, labels_plus_one: int, vocab: int, max_joint_elements: int) -> int:
    """How many encoder frames of joint output fit in ``max_joint_elements`` logits (at least one)."""
    return max(1, max_joint_elements // max(1, batch * labels_plus_one * vocab))


def lattice_log_probs(joint: JointFn, enc: torch.Tensor, dec: torch.Tensor, targets: torch.Tensor, blank: int,
                      vocab: int, max_joint_elements: int = DEFAULT_MAX_JOINT_ELEMENTS
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(blank log-probs [B, T, U+1], label log-probs [B, T, U]) of the RNN-T lattice.

    enc [B, T, H] (projected encoder output), dec [B, U+1, H] (projected prediction net output, the
    start symbol first), targets [B, U]."""
    B, T, _ = enc.shape
    step = frames_per_slice(B, dec.shape[1], vocab, max_joint_elements)
    grad = torch.is_grad_enabled() and (enc.requires_grad or dec.requires_grad)
    blanks, emits = [], []
    for t0 in range(0, T, step):
        part = enc[:, t0: t0 + step]
        if grad and step < T:
            b, e = checkpoint(_slice_log_probs, joint, part, dec, targets, blank, use_reentrant=False)
        else:
            b, e = _slice_log_probs(joint, part, dec, targets, blank)
        blanks.append(b)
        emits.append(e)
    return torch.cat(blanks, dim=1), torch.cat(emits, dim=1)


def fastemit(emit_lp: torch.Tensor, weight: float) -> torch.Tensor:
    """FastEmit (Yu et al., 2021, "FastEmit: Low-latency Streaming ASR with Sequence-level Emission
    Regularization"): the label log-probs with their values unchanged and (1 + ``weight``) times their
    gradient, so that the RNN-T loss rewards the lattice paths that emit a label over those that wait
    (blank) more than the likelihood alone does: a streaming model trained with it learns to emit sooner
    instead of waiting for more audio. The loss value is the plain NLL (NeMo's ``fastemit_lambda``)."""
    if weight == 0:
        return emit_lp
    return emit_lp + weight * (emit_lp - emit_lp.detach())


def rnnt_nll(blank_lp: torch.Tensor, emit_lp: torch.Tensor, frame_lengths: torch.Tensor,
             label_lengths: torch.Tensor) -> torch.Tensor:
    """Per-utterance negative log-likelihood [B] from the lattice log-probs."""
    B, T, U1 = blank_lp.shape
    zero = blank_lp.new_zeros(B, 1)
    alpha = torch.cat([zero, emit_lp[:, 0].cumsum(-1)], dim=-1)  # t = 0: only labels move
    alphas = [alpha]
    for t in range(1, T):
        prev = alpha + blank_lp[:, t - 1]
        c = torch.cat([zero, emit_lp[:, t].cumsum(-1)], dim=-1)
        alpha = c + torch.logcumsumexp(prev - c, dim=-1)
        alphas.append(alpha)
    stacked = torch.stack(alphas, dim=1)  # [B, T, U+1]
    b = torch.arange(B, device=blank_lp.device)
    t_last = frame_lengths.long().clamp(min=1) - 1
    u_last = label_lengths.long()
    return -(stacked[b, t_last, u_last] + blank_lp[b, t_last, u_last])


def collapsed_kl(teacher_blank: torch.Tensor, teacher_emit: torch.Tensor, blank_lp: torch.Tensor,
                 emit_lp: torch.Tensor, frame_lengths: torch.Tensor, label_lengths: torch.Tensor) -> torch.Tensor:
    """Per-utterance [B] mean over the lattice nodes (t < frames, u <= labels) of KL(teacher || model) between
    the distributions over {blank, the next label, any other label} (on the last label row: {blank, other}),
    from the two lattice log-prob tensors of each (``lattice_log_probs``): the collapsed distillation of
    RNN-T lattices, which needs no vocabulary-sized tensor."""
    B, T, U1 = blank_lp.shape
    pad = emit_lp.new_full((B, T, 1), float("-inf"))
    t = torch.arange(T, device=blank_lp.device)[None, :, None]
    u = torch.arange(U1, device=blank_lp.device)[None, None, :]
    node = (t < frame_lengths.long()[:, None, None]) & (u <= label_lengths.long()[:, None, None])
    nxt = u < label_lengths.long()[:, None, None]  # a next label exists

    def three(b: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        e = torch.cat([e.float(), pad], dim=2).masked_fill(~nxt, float("-inf"))
        b = b.float()
        both = torch.logaddexp(b, e).clamp(max=-1e-6)  # the rest: log(1 - p_blank - p_next), kept finite
        rest = torch.where(both > -0.693, torch.log(-torch.expm1(both)), torch.log1p(-torch.exp(both)))
        return torch.stack([b, e, rest], dim=-1)  # [B, T, U+1, 3]

    q, p = three(teacher_blank, teacher_emit), three(blank_lp, emit_lp)
    terms = torch.where(q > float("-inf"), q.exp() * (q - p), q.new_zeros(()))
    kl = terms.sum(-1).masked_fill(~node, 0.0)
    return kl.sum((1, 2)) / node.sum((1, 2)).clamp(min=1)


def rnnt_loss(logits: torch.Tensor, targets: torch.Tensor, frame_lengths: torch.Tensor,
              label_lengths: torch.Tensor, blank: int) -> torch.Tensor:
    """Per-utterance NLL [B] from full logits [B, T, U+1, V] (small models and tests; training uses
    ``lattice_log_probs`` so that the full logits never exist)."""
    B, T, U1, V = logits.shape
    logp = logits.float().log_softmax(-1)
    idx = targets.long().clamp(0, V - 1)[:, None, :, None].expand(B, T, U1 - 1, 1)
    emit = logp[:, :, : U1 - 1, :].gather(-1, idx).squeeze(-1)
    return rnnt_nll(logp[..., blank], emit, frame_lengths, label_lengths)
