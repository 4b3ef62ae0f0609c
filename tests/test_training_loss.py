"""The RNN-T loss of onepass.training: exact against a scalar dynamic programme, the same value and
gradients whether or not the joint is computed in slices, and the slices never exceed their bound;
FastEmit scales each label arc's gradient (its occupancy) by 1 + lambda and leaves blank arcs alone."""

import math

import pytest
import torch

from onepass.training.loss import fastemit, frames_per_slice, lattice_log_probs, rnnt_loss, rnnt_nll


def reference_nll(logits, targets, T_len, U_len, blank):
    """Slow scalar forward algorithm (float64)."""
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


def test_loss_matches_the_scalar_forward_algorithm():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 5, 6, generator=g) * 3
    targets = torch.randint(0, 5, (3, 4), generator=g)
    T_len, U_len = torch.tensor([7, 5, 3]), torch.tensor([4, 2, 3])
    ours = rnnt_loss(logits, targets, T_len, U_len, blank=5)
    assert torch.allclose(ours.double(), reference_nll(logits, targets, T_len, U_len, 5), atol=1e-4)


class Joint(torch.nn.Module):
    def __init__(self, hidden: int, vocab: int):
        super().__init__()
        self.head = torch.nn.Linear(hidden, vocab)
        self.calls: list[tuple[int, ...]] = []

    def forward(self, enc, dec):
        out = self.head(torch.relu(enc + dec))
        self.calls.append(tuple(out.shape))
        return out


@pytest.mark.parametrize("budget", [10**9, 5000, 1])
def test_sliced_joint_gives_the_same_loss_and_gradients_within_its_bound(budget):
    g = torch.Generator().manual_seed(1)
    B, T, U, H, V = 2, 9, 4, 8, 11
    enc = torch.randn(B, T, H, generator=g, requires_grad=True)
    dec = torch.randn(B, U + 1, H, generator=g, requires_grad=True)
    targets = torch.randint(0, V - 1, (B, U), generator=g)
    T_len, U_len = torch.tensor([9, 6]), torch.tensor([4, 3])
    joint = Joint(H, V)

    full = rnnt_loss(joint(enc[:, :, None, :], dec[:, None, :, :]), targets, T_len, U_len, V - 1).sum()
    full_grads = torch.autograd.grad(full, [enc, dec, joint.head.weight])

    joint.calls.clear()
    b, e = lattice_log_probs(joint, enc, dec, targets, V - 1, V, max_joint_elements=budget)
    sliced = rnnt_nll(b, e, T_len, U_len).sum()
    grads = torch.autograd.grad(sliced, [enc, dec, joint.head.weight])
    assert torch.allclose(sliced, full, atol=1e-5)
    for a, c in zip(grads, full_grads):
        assert torch.allclose(a, c, atol=1e-5)
    frames = frames_per_slice(B, U + 1, V, budget)
    assert all(shape[1] <= frames for shape in joint.calls)
    if budget < B * T * (U + 1) * V:  # sliced: no call ever holds the whole lattice of logits
        assert max(shape[0] * shape[1] * shape[2] * shape[3] for shape in joint.calls) < B * T * (U + 1) * V


def test_frames_past_the_lengths_are_ignored():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 6, 4, 5, generator=g)
    targets = torch.randint(0, 4, (2, 3), generator=g)
    a = rnnt_loss(logits, targets, torch.tensor([6, 4]), torch.tensor([3, 2]), 4)
    padded = torch.cat([logits, torch.randn(2, 3, 4, 5, generator=g)], dim=1)  # extra frames past the lengths
    b = rnnt_loss(padded, targets, torch.tensor([6, 4]), torch.tensor([3, 2]), 4)
    assert torch.allclose(a, b)


def _lattice(logits, targets, blank):
    logp = logits.float().log_softmax(-1)
    B, T, U1, V = logp.shape
    idx = targets[:, None, :, None].expand(B, T, U1 - 1, 1)
    return logp[..., blank], logp[:, :, : U1 - 1].gather(-1, idx).squeeze(-1), logp


def test_collapsed_kl_against_each_node_by_hand():
    """collapsed_kl: per utterance the mean over its nodes (t < frames, u <= labels) of KL between the
    teacher's and the model's {blank, next label, rest} probabilities ({blank, rest} on the last label row),
    summed by hand in float64 from the full log-softmax; zero for the same lattice; padding ignored."""
    from onepass.training.loss import collapsed_kl

    g = torch.Generator().manual_seed(0)
    B, T, U, V, blank = 3, 6, 4, 9, 8
    targets = torch.randint(0, V - 1, (B, U), generator=g)
    frames, labels = torch.tensor([6, 4, 1]), torch.tensor([4, 2, 0])
    tb, te, tlp = _lattice(torch.randn(B, T, U + 1, V, generator=g) * 3, targets, blank)
    sb, se, slp = _lattice(torch.randn(B, T, U + 1, V, generator=g) * 3, targets, blank)
    kl = collapsed_kl(tb, te, sb, se, frames, labels)
    for b in range(B):
        total, n = 0.0, 0
        for t in range(int(frames[b])):
            for u in range(int(labels[b]) + 1):
                q, p = tlp[b, t, u].double().exp(), slp[b, t, u].double().exp()
                picks = [blank] + ([int(targets[b, u])] if u < labels[b] else [])
                qs = [float(q[k]) for k in picks]
                ps = [float(p[k]) for k in picks]
                qs.append(1 - sum(qs))
                ps.append(1 - sum(ps))
                total += sum(a * math.log(a / c) for a, c in zip(qs, ps) if a > 0)
                n += 1
        assert float(kl[b]) == pytest.approx(total / n, rel=1e-4, abs=1e-6)  # float32 against float64
    assert torch.all(kl > 0)
    assert torch.allclose(collapsed_kl(tb, te, tb, te, frames, labels), torch.zeros(B), atol=1e-6)
    sb2, se2 = sb.clone(), se.clone()
    sb2[1, 4:] = 0.0  # outside utterance 1's frames
    se2[2, :, 0] = 0.0  # utterance 2 has no labels
    assert torch.equal(collapsed_kl(tb, te, sb2, se2, frames, labels), kl)


def arc_occupancy(blank_lp, emit_lp, T, U):
    """Posterior probability of each blank arc [T, U+1] and label arc [T, U] of one utterance by a scalar
    forward-backward pass (float64): minus the plain NLL's gradient with respect to each arc's log-prob."""
    b, e = blank_lp.double().tolist(), emit_lp.double().tolist()
    lse = lambda xs: max(xs) + math.log(sum(math.exp(x - max(xs)) for x in xs)) if max(xs) > -math.inf else -math.inf
    a = [[-math.inf] * (U + 1) for _ in range(T)]
    beta = [[-math.inf] * (U + 1) for _ in range(T)]
    for t in range(T):
        for u in range(U + 1):
            xs = [0.0] if t == 0 and u == 0 else []
            if t > 0:
                xs.append(a[t - 1][u] + b[t - 1][u])
            if u > 0:
                xs.append(a[t][u - 1] + e[t][u - 1])
            a[t][u] = lse(xs)
    for t in reversed(range(T)):
        for u in reversed(range(U + 1)):
            xs = [b[t][u]] if t == T - 1 and u == U else []
            if t < T - 1:
                xs.append(b[t][u] + beta[t + 1][u])
            if u < U:
                xs.append(e[t][u] + beta[t][u + 1])
            beta[t][u] = lse(xs)
    logp = beta[0][0]
    blank_occ = torch.zeros(T, U + 1, dtype=torch.float64)
    emit_occ = torch.zeros(T, U, dtype=torch.float64)
    for t in range(T):
        for u in range(U + 1):
            nxt = beta[t + 1][u] if t < T - 1 else (0.0 if u == U else -math.inf)
            blank_occ[t, u] = math.exp(a[t][u] + b[t][u] + nxt - logp)
            if u < U:
                emit_occ[t, u] = math.exp(a[t][u] + e[t][u] + beta[t][u + 1] - logp)
    return blank_occ, emit_occ


@pytest.mark.parametrize("lam", [0.0, 0.01, 0.5])
def test_fastemit_keeps_the_loss_and_scales_the_label_arcs_gradient(lam):
    g = torch.Generator().manual_seed(5)
    B, T, U = 2, 6, 3
    logits = torch.randn(B, T, U + 1, 2, generator=g)  # per node: (blank, the next label)
    lp = logits.log_softmax(-1)
    blank_lp = lp[..., 0].clone().requires_grad_(True)
    emit_lp = lp[:, :, :U, 1].clone().requires_grad_(True)
    T_len, U_len = torch.tensor([6, 4]), torch.tensor([3, 2])
    nll = rnnt_nll(blank_lp, fastemit(emit_lp, lam), T_len, U_len)
    plain = rnnt_nll(blank_lp.detach(), emit_lp.detach(), T_len, U_len)
    assert torch.allclose(nll.detach(), plain)  # the value is the plain NLL
    nll.sum().backward()
    for i in range(B):
        t, u = int(T_len[i]), int(U_len[i])
        blank_occ, emit_occ = arc_occupancy(blank_lp[i, :t, : u + 1].detach(), emit_lp[i, :t, :u].detach(), t, u)
        assert torch.allclose(-blank_lp.grad[i, :t, : u + 1].double(), blank_occ, atol=1e-5)
        assert torch.allclose(-emit_lp.grad[i, :t, :u].double(), (1 + lam) * emit_occ, atol=1e-5)
        assert float(blank_lp.grad[i, t:].abs().sum() + emit_lp.grad[i, :, u:].abs().sum()) == 0.0
