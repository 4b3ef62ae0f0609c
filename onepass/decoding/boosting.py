"""Phrase boosting inside greedy RNN-T: the prefix trees of every stream as device tensors.

``BoostPool`` (one per state arena) keeps every stream's tree (``phrases.CompiledPhrases``) in
one node table, and one row per arena slot: the slot's current node, its tree's root and the
root's arcs (a match may start at any label). Node 0 is the empty tree: a slot without phrases
points there and gets no bonus. Both greedy decoders call ``boosted_labels`` and ``advance`` on
a ``BoostRows`` (the rows of one decoding call); with fixed table widths neither reads the host
nor makes a shape that depends on data (CUDA graphs, the ``meta`` test).

The rule (NeMo's for greedy RNN-T with a boosting tree): the model alone decides blank or not;
when it emits, the label is the best non-blank one after the bonus of the slot's node is added
to the joint's scores. A row whose node is 0 thus emits exactly the model's argmax.

Tables are reallocated only when a tree does not fit (more nodes, a wider node or root): then
``on_realloc`` is called (the arena bumps its generation, dropping captured graphs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .phrases import CompiledPhrases

NULL = 0  # the empty tree's node


@dataclass
class BoostRows:
    """Boosting state of the rows of one decoding call: views of the pool's tables plus the rows'
    own tensors (``node`` is updated in place by ``advance``)."""

    back: torch.Tensor  # (N,) float32 gain of a label that leaves the node's match
    arc_token: torch.Tensor  # (N, A) int64 piece ids of the node's arcs (padding: blank)
    arc_next: torch.Tensor  # (N, A) int64 node an arc leads to
    arc_gain: torch.Tensor  # (N, A) float32 bonus of an arc
    node: torch.Tensor  # (B,) int64 current node per row
    root: torch.Tensor  # (B,) int64 the row's tree root (NULL: no phrases)
    root_token: torch.Tensor  # (B, R) int64 the root's arcs (padding: blank)
    root_next: torch.Tensor  # (B, R) int64
    root_gain: torch.Tensor  # (B, R) float32 the next node's potential
    blank: int

    def select(self, index: torch.Tensor) -> "BoostRows":
        """The rows ``index`` (copies; write ``node`` back with ``index``)."""
        pick = lambda t: t.index_select(0, index)  # noqa: E731 (faster than t[index] on the CPU)
        return BoostRows(self.back, self.arc_token, self.arc_next, self.arc_gain, pick(self.node), pick(self.root),
                         pick(self.root_token), pick(self.root_next), pick(self.root_gain), self.blank)


def bonus(rows: BoostRows, vocab: int) -> torch.Tensor:
    """(B, vocab) float32: what each label adds to the joint's score in each row's node (the rule
    ``boosted_labels`` applies without building this table)."""
    back = rows.back[rows.node]  # (B,)
    out = back[:, None].repeat(1, vocab)
    out.scatter_(1, rows.root_token, rows.root_gain + back[:, None])
    out.scatter_(1, rows.arc_token[rows.node], rows.arc_gain[rows.node])  # the node's own arcs win
    return out


def boosted_labels(logits: torch.Tensor, rows: BoostRows, top_label: torch.Tensor,
                   top_logit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) the best non-blank label of ``logits`` (B, V) plus each row's ``bonus`` (the first
    maximum, as ``torch.argmax``), and (B,) its logit, for the rows whose own maximum
    ``top_label`` / ``top_logit`` (``logits.max(dim=1)``, the first maximum) is not blank: the rows
    that emit. Other rows get an unspecified label (the decoders keep blank there).

    No vocabulary-wide work: only the arcs' labels get more than the node's ``back``, which every
    other label gets. An arc's gain is above ``back`` (``phrases.build_tree``: a child's score is
    positive, a failure arc's gain is ``back`` plus a potential, the root's arcs likewise), so the
    best label outside the arcs is the model's own maximum (if it is an arc label, its arc beats
    it): the candidates are the arcs' labels (a gather) and ``top_label``."""
    neg = float("-inf")
    back = rows.back[rows.node]  # (B,)
    arc_token, arc_gain = rows.arc_token[rows.node], rows.arc_gain[rows.node]  # (B, A)
    shadowed = (rows.root_token[:, :, None] == arc_token[:, None, :]).any(dim=2)  # the node's arc wins
    token = torch.cat([arc_token, rows.root_token], dim=1)  # (B, A + R); padding: blank
    gain = torch.cat([arc_gain, (rows.root_gain + back[:, None]).masked_fill(shadowed, neg)], dim=1)
    cand_logit = logits.gather(1, token).float()
    cand = (cand_logit + gain).masked_fill(token == rows.blank, neg)
    best = cand.max(dim=1).values
    tied = cand == best[:, None]  # the lowest label among equal scores, as argmax
    cand_label = torch.where(tied, token, logits.shape[1]).min(dim=1).values
    cand_logit = cand_logit.gather(1, torch.where(tied & (token == cand_label[:, None]), 0, 1).argmin(1, keepdim=True))[:, 0]
    top_logit = top_logit.float()
    top_score = top_logit + back
    take = (best > top_score) | ((best == top_score) & (cand_label < top_label))
    return torch.where(take, cand_label, top_label), torch.where(take, cand_logit, top_logit)


def advance(rows: BoostRows, labels: torch.Tensor, emit: torch.Tensor) -> None:
    """Rows that ``emit`` ``labels`` move to the label's next node, in place."""
    at = rows.arc_token[rows.node]  # (B, A)
    on_arc = at == labels[:, None]
    arc = rows.arc_next[rows.node].gather(1, on_arc.int().argmax(dim=1, keepdim=True))[:, 0]
    on_root = rows.root_token == labels[:, None]
    start = rows.root_next.gather(1, on_root.int().argmax(dim=1, keepdim=True))[:, 0]
    nxt = torch.where(on_arc.any(dim=1), arc, torch.where(on_root.any(dim=1), start, rows.root))
    rows.node.copy_(torch.where(emit, nxt, rows.node))


@dataclass
class _Tree:
    base: int  # its node 0 in the pool
    tree: CompiledPhrases


class BoostPool:
    """The trees of one arena's streams, and a boosting row per slot (see the module docstring)."""

    def __init__(self, rows: int, blank: int, device: torch.device | str,
                 on_realloc: Callable[[], None] | None = None):
        self.blank = blank
        self.device = torch.device(device)
        self.on_realloc = on_realloc
        self.trees: dict[int, _Tree] = {}
        self.attached: dict[int, int] = {}  # slot -> tree handle
        self._handles = 0
        self._alloc_tables(1, 1)
        self._alloc_rows(rows, 1)

    @property
    def active(self) -> bool:
        """Some stream has phrases (the decoders boost only then)."""
        return bool(self.trees)

    # ---- storage -------------------------------------------------------------------
    def _alloc_tables(self, nodes: int, width: int) -> None:
        d = self.device
        self.back = torch.zeros(nodes, device=d)
        self.arc_token = torch.full((nodes, width), self.blank, dtype=torch.long, device=d)
        self.arc_next = torch.zeros(nodes, width, dtype=torch.long, device=d)
        self.arc_gain = torch.zeros(nodes, width, device=d)

    def _alloc_rows(self, rows: int, width: int) -> None:
        d = self.device
        self.node = torch.zeros(rows, dtype=torch.long, device=d)
        self.root = torch.zeros(rows, dtype=torch.long, device=d)
        self.root_token = torch.full((rows, width), self.blank, dtype=torch.long, device=d)
        self.root_next = torch.zeros(rows, width, dtype=torch.long, device=d)
        self.root_gain = torch.zeros(rows, width, device=d)

    def _realloc(self, nodes: int, width: int, rows: int, root_width: int, notify: bool = True) -> None:
        """New tables (trees rewritten from the host copies, packed from node 1) and rows (kept);
        ``notify``: call ``on_realloc`` (not when the arena reallocates itself anyway)."""
        old = (self.node, self.root, self.root_token, self.root_next, self.root_gain)
        if (nodes, width) != tuple(self.arc_token.shape):
            self._alloc_tables(nodes, width)
            self._pack(list(self.trees))
        if (rows, root_width) != tuple(self.root_token.shape):
            self._alloc_rows(rows, root_width)
            for slot in range(min(rows, old[0].shape[0])):
                self.node[slot], self.root[slot] = old[0][slot], old[1][slot]
            for slot, handle in self.attached.items():
                self._write_root(slot, self.trees[handle])
        if notify and self.on_realloc is not None:
            self.on_realloc()

    def grow_rows(self, rows: int) -> None:
        """Room for ``rows`` slots (the arena grew: it starts a new generation itself)."""
        if rows > self.node.shape[0]:
            self._realloc(*self.arc_token.shape, rows, self.root_token.shape[1], notify=False)

    def _free_base(self, need: int) -> int | None:
        """First fit: the lowest base with ``need`` free nodes after it (node 0 is never free)."""
        at = 1
        for t in sorted(self.trees.values(), key=lambda t: t.base):
            if t.base - at >= need:
                return at
            at = t.base + t.tree.nodes
        return at if self.back.shape[0] - at >= need else None

    def _pack(self, handles: list[int]) -> None:
        """Rewrite the trees ``handles`` from node 1 on, in order; re-point the slots attached to them."""
        moved = {}
        at = 1
        for h in sorted(handles, key=lambda h: self.trees[h].base):
            t = self.trees[h]
            moved[h] = at - t.base
            t.base = at
            self._write_tree(t)
            at += t.tree.nodes
        for slot, h in self.attached.items():
            if h in moved:
                self.node[slot] += moved[h]
                self.root[slot] += moved[h]
                self._write_root(slot, self.trees[h])

    def _write_tree(self, t: _Tree) -> None:
        tree, base, width = t.tree, t.base, self.arc_token.shape[1]
        tok = [[self.blank] * width for _ in range(tree.nodes)]
        nxt = [[0] * width for _ in range(tree.nodes)]
        gain = [[0.0] * width for _ in range(tree.nodes)]
        for i, arcs in enumerate(tree.arcs[1:], start=1):
            for j, (token, to, g) in enumerate(arcs):
                tok[i][j], nxt[i][j], gain[i][j] = token, base + to, g
        sl = slice(base, base + tree.nodes)
        self.back[sl] = torch.tensor(tree.back)
        self.arc_token[sl] = torch.tensor(tok, dtype=torch.long)
        self.arc_next[sl] = torch.tensor(nxt, dtype=torch.long)
        self.arc_gain[sl] = torch.tensor(gain)

    def _write_root(self, slot: int, t: _Tree | None) -> None:
        width = self.root_token.shape[1]
        arcs = t.tree.arcs[0] if t is not None else []
        pad = width - len(arcs)
        self.root_token[slot] = torch.tensor([a[0] for a in arcs] + [self.blank] * pad, dtype=torch.long)
        self.root_next[slot] = torch.tensor([t.base + a[1] for a in arcs] + [0] * pad, dtype=torch.long)
        self.root_gain[slot] = torch.tensor([a[2] for a in arcs] + [0.0] * pad)

    # ---- trees and slots -------------------------------------------------------------
    def add(self, tree: CompiledPhrases) -> int:
        """Store a stream's tree; returns its handle (attach it to the stream's slot)."""
        was_active = self.active
        nodes, width = self.arc_token.shape
        rows, root_width = self.root_token.shape
        used = 1 + sum(t.tree.nodes for t in self.trees.values())
        fits = tree.width() <= width
        base = self._free_base(tree.nodes) if fits else None
        handle = self._handles
        self._handles += 1
        t = self.trees[handle] = _Tree(base if base is not None else nodes, tree)  # no base yet: packs last
        if base is not None:
            self._write_tree(t)
        elif fits and nodes - used >= tree.nodes:
            self._pack(list(self.trees))  # fragmented: packed in place (same tensors)
        else:
            nodes = nodes if nodes - used >= tree.nodes else max(2 * nodes, used + tree.nodes)
            self._realloc(nodes, max(width, tree.width()), rows, max(root_width, len(tree.arcs[0])))
        if len(tree.arcs[0]) > self.root_token.shape[1]:
            self._realloc(*self.arc_token.shape, rows, len(tree.arcs[0]))
        if not was_active and self.on_realloc is not None:
            self.on_realloc()  # the step body changes (boosting on): captured graphs are stale
        return handle

    def remove(self, handle: int) -> None:
        """Drop a tree (its stream closed); slots still attached to it get no phrases."""
        for slot in [s for s, h in self.attached.items() if h == handle]:
            self.attach(slot, None)
        if self.trees.pop(handle, None) is not None and not self.trees and self.on_realloc is not None:
            self.on_realloc()  # boosting off again

    def attach(self, slot: int, handle: int | None) -> None:
        """Slot ``slot`` decodes with the tree ``handle`` from its root (None: no phrases)."""
        t = self.trees[handle] if handle is not None else None
        if t is None:
            self.attached.pop(slot, None)
        else:
            self.attached[slot] = handle
        base = t.base if t is not None else NULL
        self.node[slot] = base
        self.root[slot] = base
        self._write_root(slot, t)

    def rows(self, slots) -> BoostRows:
        """The ``slots`` (an index tensor or a slice) for one decoding call; ``node`` is a copy to
        write back with ``write``."""
        take = (lambda t: t[slots]) if isinstance(slots, slice) else (lambda t: t.index_select(0, slots))
        return BoostRows(self.back, self.arc_token, self.arc_next, self.arc_gain, take(self.node).clone(),
                         take(self.root), take(self.root_token), take(self.root_next), take(self.root_gain),
                         self.blank)

    def write(self, slots, rows: BoostRows) -> None:
        if isinstance(slots, slice):
            self.node[slots] = rows.node
        else:
            self.node.index_copy_(0, slots, rows.node)
