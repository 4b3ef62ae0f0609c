"""Batched RNN-T beam search with phrase boosting, state carried across decoding calls.

Time-synchronous search (Saon et al., ICASSP 2020): each stream keeps ``beam`` hypotheses. Per encoder
frame, up to ``symbols`` rounds: every hypothesis still expanding is scored by the joint; ending the
frame (blank) moves it into the next frame's beam, where equal label sequences are merged (their
probabilities added) and the best ``beam`` kept; emitting a label keeps it in the frame, the best
``beam`` expansions going on (with boosting: the label's bonus in the hypothesis' own node of the
stream's prefix tree, ``boosting``, is part of its score). Expansions that can no longer reach the
next frame's beam are dropped.

Labels leave the search when every hypothesis of a stream agrees on them (the common prefix of the
hypotheses' pending labels): those are a stream's emissions of a call, final as the greedy decoders'
are, so partial results only lag by what the beam is still deciding (at most ``SETTLE`` frames). A
stream's last call (``final``) emits the rest of its best hypothesis (a started phrase match pays its
credit back first). Pending labels are bounded (``BeamState.tokens``' width) and so is their age
(``SETTLE``): past either, the best hypothesis' oldest labels are emitted and the hypotheses that
disagree with them dropped.

Every loop has a bound known on the host (frames of the call, ``symbols``) and the labels go into
fixed-size buffers: no host read (``host_reads`` lets the CPU end a frame's rounds early, with the same
labels), so a beam step can be captured in a CUDA graph like a label-looping one. Rows are
independent: batched == alone, and a stream's chunks give the same labels as its whole audio (the
search is frame-synchronous).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..model.asr import NemotronASR
from .boosting import BoostRows
from .label_looping import LabelBuffers, ready_buffers

BEAM_SYMBOLS = 3  # labels a hypothesis may emit per encoder frame
PENDING = 48  # labels a hypothesis may hold past what its stream has emitted
SETTLE = 8  # encoder frames (640 ms) after which the best hypothesis' label is emitted whatever the others
# hold: partial results lag by at most this, and an endpoint (800 ms without labels by default) finds the
# utterance's labels emitted
NEG = float("-inf")


def beam_capacity(frames: int, symbols: int = BEAM_SYMBOLS, pending: int = PENDING) -> int:
    """Label buffer columns of one call over ``frames`` frames: what was pending before it plus what it
    adds, and one column that takes the writes of labels not emitted."""
    return frames * symbols + pending + 1


@dataclass
class BeamState:
    """The hypotheses of a batch of streams (slot dimension: 1 for ``h``/``c``, 0 for the rest)."""

    h: torch.Tensor  # (layers, B, K, hidden) prediction-net state
    c: torch.Tensor  # (layers, B, K, hidden)
    pred: torch.Tensor  # (B, K, pred_hidden) prediction output for the last label
    score: torch.Tensor  # (B, K) float32 log-probability plus bonus; -inf: an empty place
    node: torch.Tensor  # (B, K) int64 boosting node, relative to the stream's tree root
    tokens: torch.Tensor  # (B, K, P) int64 labels not yet emitted
    frames: torch.Tensor  # (B, K, P) int64 their absolute encoder frames
    probs: torch.Tensor  # (B, K, P) float32 their softmax probabilities
    length: torch.Tensor  # (B, K) int64 pending labels

    def slot_fields(self) -> list[tuple[torch.Tensor, int]]:
        """(tensor, slot dim) of every field, in declaration order."""
        return [(getattr(self, f.name), 1 if f.name in ("h", "c") else 0) for f in fields(self)]

    def pick(self, index: torch.Tensor) -> "BeamState":
        """Hypotheses ``index`` (B, K') of each stream (copies)."""
        b = torch.arange(index.shape[0], device=index.device)[:, None]
        return BeamState(*[t[:, b, index] if dim else t[b, index] for t, dim in self.slot_fields()])

    def where(self, keep: torch.Tensor, other: "BeamState") -> "BeamState":
        """Per stream (``keep`` (B,) bool): this state's hypotheses, else ``other``'s."""
        out = []
        for (a, dim), (o, _) in zip(self.slot_fields(), other.slot_fields()):
            shape = [1] * a.dim()
            shape[dim] = -1
            out.append(torch.where(keep.view(shape), a, o))
        return BeamState(*out)


@torch.no_grad()
def initial_beam_state(model: NemotronASR, rows: int, beam: int, pending: int = PENDING) -> BeamState:
    h, c = model.decoder_initial_state(rows)
    blank = torch.full((rows,), model.config.blank_id, dtype=torch.long, device=h.device)
    pred, h, c = model.decoder(blank, h, c)
    dev = h.device
    score = torch.full((rows, beam), NEG, device=dev)
    score[:, 0] = 0.0
    zeros = torch.zeros(rows, beam, dtype=torch.long, device=dev)
    return BeamState(h[:, :, None].repeat(1, 1, beam, 1), c[:, :, None].repeat(1, 1, beam, 1),
                     pred[:, None].repeat(1, beam, 1), score, zeros,
                     torch.zeros(rows, beam, pending, dtype=torch.long, device=dev),
                     torch.zeros(rows, beam, pending, dtype=torch.long, device=dev),
                     torch.zeros(rows, beam, pending, device=dev), zeros.clone())


def _merge(a: BeamState, b: BeamState, beam: int) -> BeamState:
    """The best ``beam`` of both sets per stream, equal label sequences merged into one (the
    best-scoring alignment kept, the probabilities of all added)."""
    s = BeamState(*[torch.cat([x, y], dim=dim + 1) for (x, dim), (y, _) in zip(a.slot_fields(), b.slot_fields())])
    n, p = s.score.shape[1], s.tokens.shape[2]
    live = s.score > NEG
    pos = torch.arange(p, device=s.score.device)
    same_tok = ((s.tokens[:, :, None] == s.tokens[:, None]) | (pos >= s.length[:, :, None, None])).all(-1)
    same = same_tok & (s.length[:, :, None] == s.length[:, None]) & live[:, :, None] & live[:, None]  # (B, N, N)
    total = torch.where(same, s.score[:, None, :], NEG).logsumexp(-1)  # (B, N)
    idx = torch.arange(n, device=s.score.device)
    better = same & ((s.score[:, None, :] > s.score[:, :, None])
                     | ((s.score[:, None, :] == s.score[:, :, None]) & (idx[None, None, :] < idx[None, :, None])))
    s.score = torch.where(live & ~better.any(-1), total, NEG)
    return s.pick(s.score.topk(beam, dim=1).indices)


def _candidates(lp: torch.Tensor, blank: int, rows: BoostRows | None, node: torch.Tensor, root: torch.Tensor,
                beam: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per hypothesis (lp (H, V) log-probabilities; node (H,) absolute): the best ``beam`` non-blank
    labels by log-probability plus bonus: (labels, gain, next node), each (H, beam). The bonus rule
    is greedy boosting's (``boosting.bonus``); only the node's arcs, the root's arcs and the model's
    own best labels can be among the best (every other label gets the node's ``back``)."""
    plain = lp.clone()
    plain[:, blank] = NEG
    if rows is None:
        v, lab = plain.topk(beam, dim=1)
        return lab, torch.zeros_like(v), torch.zeros_like(lab)
    back = rows.back[node]  # (H,)
    at, an, ag = rows.arc_token[node], rows.arc_next[node], rows.arc_gain[node]  # (H, A)
    rt, rn, rg = rows.root_token, rows.root_next, rows.root_gain + back[:, None]  # (H, R)
    in_arc = (rt[:, :, None] == at[:, None, :]).any(-1)
    top = plain.topk(beam, dim=1).indices  # (H, beam): the model's own; those with an arc are counted there
    boosted = (top[:, :, None] == at[:, None, :]).any(-1) | (top[:, :, None] == rt[:, None, :]).any(-1)
    labels = torch.cat([at, rt, top], dim=1)
    gain = torch.cat([ag, rg, back[:, None].expand_as(top)], dim=1)
    nxt = torch.cat([an, rn, root[:, None].expand_as(top)], dim=1)
    dead = torch.cat([at == blank, (rt == blank) | in_arc, boosted], dim=1)
    score = (lp.gather(1, labels) + gain).masked_fill(dead, NEG)
    best = score.topk(min(beam, score.shape[1]), dim=1).indices
    return labels.gather(1, best), gain.gather(1, best), nxt.gather(1, best)


@torch.no_grad()
def beam_decode(model: NemotronASR, enc: torch.Tensor, valid: torch.Tensor, state: BeamState,
                frame_offset: torch.Tensor, final: torch.Tensor, boost: BoostRows | None = None,
                symbols: int = BEAM_SYMBOLS, host_reads: bool = False,
                out: LabelBuffers | None = None) -> tuple[BeamState, LabelBuffers]:
    """enc (B, T, pred_hidden) projected encoder frames; valid (B,) frames per row; frame_offset (B,)
    absolute index of enc[:, 0]; final (B,) bool: the stream's last call (all its labels are
    emitted). ``boost``: the rows' boosting (``boost.node`` is not used: each hypothesis keeps its own
    node in ``state.node``). ``host_reads``: end a frame's rounds early when no expansion is left (one
    host read per round: for the CPU; the same labels). ``out``: buffers to fill (capacity at least
    ``beam_capacity``), zeroed first; allocated when None. Returns the new state and the buffers of each
    row's emitted labels (``label_looping.emissions_from_buffers`` reads them)."""
    blank = model.config.blank_id
    b, t_max, d = enc.shape
    k, p = state.score.shape[1], state.tokens.shape[2]
    dev = enc.device
    valid, frame_offset, final = valid.to(dev), frame_offset.to(dev), final.to(dev)
    root = (boost.root if boost is not None else torch.zeros(b, dtype=torch.long, device=dev))
    hyp_root = root.repeat_interleave(k)
    if boost is not None:
        boost = BoostRows(boost.back, boost.arc_token, boost.arc_next, boost.arc_gain, hyp_root, hyp_root,
                          boost.root_token.repeat_interleave(k, 0), boost.root_next.repeat_interleave(k, 0),
                          boost.root_gain.repeat_interleave(k, 0), blank)
    out = ready_buffers(out, b, beam_capacity(t_max, symbols, p), dev)
    out_tok, out_frame, out_prob = out.token_ids, out.frames, out.probs
    cap = out.capacity - 1  # the last column takes the writes of labels not emitted
    count = out.counts
    pos = torch.arange(p, device=dev)
    rows = torch.arange(b, device=dev)

    def emit(st: BeamState, upto: torch.Tensor, best: torch.Tensor) -> BeamState:
        """Emit ``upto`` (B,) pending labels of hypothesis ``best`` (B,), which every live one shares."""
        take = pos[None] < upto[:, None]
        at = torch.where(take, count[:, None] + pos[None], cap)
        out_tok.scatter_(1, at, st.tokens[rows, best])
        out_frame.scatter_(1, at, st.frames[rows, best])
        # hypotheses agree on labels, not on frames: a later best one may have placed them earlier
        last = out_frame.gather(1, (count + upto - 1).clamp(min=0)[:, None])
        st.frames = torch.maximum(st.frames, last[:, :, None])
        out_prob.scatter_(1, at, st.probs[rows, best])
        count.add_(upto)
        shift = (pos[None, None] + upto[:, None, None]).clamp(max=p - 1).expand_as(st.tokens)
        st.tokens, st.frames, st.probs = (x.gather(2, shift) for x in (st.tokens, st.frames, st.probs))
        st.length = (st.length - upto[:, None]).clamp(min=0)
        return st

    for t in range(t_max):
        live_row = t < valid
        x = enc[:, t].repeat_interleave(k, 0)[:, None, :]  # (B*K, 1, D)
        frame = (frame_offset + t).repeat_interleave(k).view(b, k)
        a, nxt = state, None
        for s in range(symbols):
            logits = model.joint(x, a.pred.reshape(b * k, 1, -1))[:, 0].float()
            lp = torch.log_softmax(logits, dim=-1)  # (B*K, V)
            ended = BeamState(*[x_ for x_, _ in a.slot_fields()])
            ended.score = a.score + lp[:, blank].view(b, k)
            nxt = ended if nxt is None else _merge(nxt, ended, k)  # the frame's first: distinct sequences
            if s == symbols - 1:
                break
            labels, gain, to = _candidates(lp, blank, boost, hyp_root + a.node.reshape(-1), hyp_root, k)  # (B*K, K)
            lab_lp = lp.gather(1, labels)
            score = (a.score.view(b * k, 1) + lab_lp + gain).view(b, k * k)
            score = torch.where(score > nxt.score.min(dim=1, keepdim=True).values, score, NEG)  # cannot reach the beam
            if host_reads and not bool((score > NEG).any()):
                break  # no expansion left in any row: the frame's other rounds would change nothing
            best = score.topk(k, dim=1).indices  # (B, K)
            parent = best // k
            grown = a.pick(parent)
            grown.score = score.gather(1, best)
            label = labels.view(b, k * k).gather(1, best)
            grown.node = to.view(b, k * k).gather(1, best) - root[:, None]
            pred, h, c = model.decoder(label.reshape(-1), grown.h.reshape(grown.h.shape[0], b * k, -1),
                                       grown.c.reshape(grown.c.shape[0], b * k, -1))
            grown.pred, grown.h, grown.c = pred.view(b, k, -1), h.view_as(grown.h), c.view_as(grown.c)
            slot = grown.length.clamp(max=p - 1)[..., None]
            grown.tokens = grown.tokens.scatter(2, slot, label[..., None])
            grown.frames = grown.frames.scatter(2, slot, frame[..., None])
            grown.probs = grown.probs.scatter(2, slot, lab_lp.view(b, k * k).gather(1, best).exp()[..., None])
            grown.length = (grown.length + 1).clamp(max=p)
            a = grown
        state = nxt.where(live_row, state)
        # bound the pending labels (a frame adds up to symbols - 1) and their age (``SETTLE`` frames): the best
        # hypothesis' first ``m`` are forced on the others (those that disagree are dropped), and any still
        # too long is dropped
        best = state.score.argmax(dim=1)
        settled = ((state.frames[rows, best] <= frame_offset[:, None] + t - SETTLE)
                   & (pos < state.length[rows, best][:, None]))
        m = torch.maximum((state.length[rows, best] - (p - symbols)).clamp(min=0), settled.sum(dim=1))
        m = torch.where(live_row, m, 0)  # a row past its frames is not searched: nothing is forced on it
        head = pos < m[:, None]
        differ = (((state.tokens != state.tokens[rows, best][:, None]) & head[:, None]).any(-1)
                  | (state.length < m[:, None]))
        state.score = state.score.masked_fill(differ | (state.length - m[:, None] > p - symbols), NEG)
        # emit the labels every live hypothesis agrees on
        live = state.score > NEG
        agree = (state.tokens == state.tokens[rows, best][:, None]) & (pos < state.length[..., None])
        agree = (agree | ~live[..., None]).all(dim=1)  # (B, P)
        state = emit(state, agree.long().cumprod(dim=1).sum(dim=1), best)
    # last call: the rest of the best hypothesis (an unfinished phrase match pays its credit back)
    rank = state.score
    if boost is not None:
        rank = rank + boost.back[root[:, None] + state.node]
    best = rank.argmax(dim=1)
    state = emit(state, torch.where(final, state.length[rows, best], 0), best)
    others = torch.arange(k, device=dev)[None] != best[:, None]
    state.score = state.score.masked_fill(final[:, None] & others, NEG)  # what was emitted is the one left
    return state, out
