"""Pure-PyTorch RNN-T loss (transformers' own loss needs torchaudio, which torch 2.13 lacks here).

Forward algorithm over the T x (U+1) lattice, looping over time only: within one time step the label
recursion alpha[t, u] = logaddexp(alpha[t-1, u] + blank[t-1, u], alpha[t, u-1] + emit[t, u-1]) is a
prefix sum in log space, solved exactly with ``torch.logcumsumexp``. Autograd gives the gradients.
"""

from __future__ import annotations

import torch


def rnnt_loss(logits: torch.Tensor, targets: torch.Tensor, logit_lengths: torch.Tensor,
              target_lengths: torch.Tensor, blank: int) -> torch.Tensor:
    """Per-utterance negative log-likelihoods [B].

    logits [B, T, U+1, V] (joint output, unnormalised), targets [B, U] (padded with anything),
    logit_lengths [B] (valid encoder frames), target_lengths [B] (valid labels).
    """
    B, T, U1, V = logits.shape
    logp = logits.float().log_softmax(-1)
    blank_lp = logp[..., blank]  # [B, T, U+1]
    idx = targets.long().clamp(0, V - 1)[:, None, :, None].expand(B, T, U1 - 1, 1)
    emit_lp = logp[:, :, : U1 - 1, :].gather(-1, idx).squeeze(-1)  # [B, T, U]
    zero = blank_lp.new_zeros(B, 1)
    alphas = []
    alpha = torch.cat([zero, emit_lp[:, 0].cumsum(-1)], dim=-1)  # t = 0: only label moves
    alphas.append(alpha)
    for t in range(1, T):
        prev = alpha + blank_lp[:, t - 1]
        c = torch.cat([zero, emit_lp[:, t].cumsum(-1)], dim=-1)
        alpha = c + torch.logcumsumexp(prev - c, dim=-1)
        alphas.append(alpha)
    alphas = torch.stack(alphas, dim=1)  # [B, T, U+1]
    b = torch.arange(B, device=logits.device)
    t_last = logit_lengths.long() - 1
    u_last = target_lengths.long()
    return -(alphas[b, t_last, u_last] + blank_lp[b, t_last, u_last])


def _reference(logits, targets, T_len, U_len, blank):
    """Slow scalar DP, for the self-check."""
    import math

    out = []
    logp = logits.double().log_softmax(-1)
    for b in range(logits.shape[0]):
        T, U = int(T_len[b]), int(U_len[b])
        a = [[-math.inf] * (U + 1) for _ in range(T)]
        a[0][0] = 0.0
        for t in range(T):
            for u in range(U + 1):
                if t == 0 and u == 0:
                    continue
                x = []
                if t > 0:
                    x.append(a[t - 1][u] + float(logp[b, t - 1, u, blank]))
                if u > 0:
                    x.append(a[t][u - 1] + float(logp[b, t, u - 1, targets[b, u - 1]]))
                m = max(x)
                a[t][u] = m + math.log(sum(math.exp(v - m) for v in x))
        out.append(-(a[T - 1][U] + float(logp[b, T - 1, U, blank])))
    return torch.tensor(out, dtype=torch.float64)


if __name__ == "__main__":
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 5, 6, generator=g) * 3
    targets = torch.randint(0, 5, (3, 4), generator=g)
    T_len, U_len = torch.tensor([7, 5, 3]), torch.tensor([4, 2, 3])
    mine = rnnt_loss(logits, targets, T_len, U_len, blank=5)
    ref = _reference(logits, targets, T_len, U_len, blank=5)
    print(mine, ref)
    assert torch.allclose(mine.double(), ref, atol=1e-4)
    print("ok")
