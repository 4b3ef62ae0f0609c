"""Phrase boosting in the decoders (onepass.decoding.phrases, .boosting): the prefix tree's score
bookkeeping, the tensor pool against a plain-Python walk of the tree, both greedy decoders giving
the same labels with boosting, rows without phrases untouched, and no host reads (meta device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onepass.decoding.boosting import BoostPool, advance, bonus, boosted_labels
from onepass.decoding.greedy import greedy_decode, initial_decoder_state
from onepass.decoding.label_looping import emissions_from_buffers, label_looping_decode
from onepass.decoding.phrases import DEPTH_SCALING, build_tree
from onepass.errors import OnePassError
from tests.test_label_looping import random_encoder, tiny_model

VOCAB = 24
BLANK = VOCAB - 1


def walk(tree, node: int, token: int) -> tuple[int, float]:
    """(next node, gain) of ``token`` at ``node``, straight from the arc lists."""
    for tok, nxt, gain in tree.arcs[node] if node else ():
        if tok == token:
            return nxt, gain
    for tok, nxt, gain in tree.arcs[0]:
        if tok == token:
            return nxt, gain + tree.back[node]
    return 0, tree.back[node]


def total(tree, tokens: list[int]) -> tuple[float, int]:
    node, score = 0, 0.0
    for t in tokens:
        node, gain = walk(tree, node, t)
        score += gain
    return score, node


@pytest.mark.parametrize("d", [DEPTH_SCALING, 2.0, 0.0])  # the default, NeMo's, first pieces only
def test_a_failed_prefix_leaves_no_bonus_and_a_finished_phrase_keeps_it(d):
    b = 1.5
    tree = build_tree([([1, 2, 3], b), ([2, 4], b), ([5, 6], b), ([5, 6, 7, 8], b)], d)
    full = b + 2 * d * b
    assert total(tree, [1, 2, 3]) == pytest.approx((full, total(tree, [1, 2, 3])[1]))
    # a started phrase gains, leaving it takes everything back
    assert total(tree, [1])[0] == pytest.approx(b)
    assert total(tree, [1, 2])[0] == pytest.approx(b + d * b)
    assert total(tree, [1, 2, 9])[0] == pytest.approx(0.0)
    assert total(tree, [1, 9, 9, 9])[0] == pytest.approx(0.0)
    # a finished phrase keeps its bonus whatever follows
    assert total(tree, [1, 2, 3, 9, 10])[0] == pytest.approx(full)
    # [1, 2] fails on 4, but [2, 4] matched meanwhile (a suffix): its credit, no more
    assert total(tree, [1, 2, 4])[0] == pytest.approx(b + d * b)
    assert total(tree, [1, 2, 4, 9])[0] == pytest.approx(b + d * b)
    # a finished phrase that is the prefix of a longer one: the longer one's partial credit goes,
    # the finished one's stays
    short = b + d * b
    assert total(tree, [5, 6, 7])[0] == pytest.approx(short + d * b)
    assert total(tree, [5, 6, 7, 9])[0] == pytest.approx(short)
    assert total(tree, [5, 6, 7, 8, 9])[0] == pytest.approx(b + 3 * d * b)
    # a match may start right after a failure, on the failing label itself
    assert total(tree, [1, 5, 6])[0] == pytest.approx(short)


def test_depth_scaling_out_of_range_is_a_user_error():
    for bad in (-0.5, 4.5, float("nan")):
        with pytest.raises(OnePassError, match="depth scaling"):
            build_tree([([1, 2], 1.0)], bad)


def random_trees(rng, n_trees: int, tokens: int = VOCAB - 1):
    """Trees of 1-5 random phrases of 1-4 labels below ``tokens``."""
    trees = []
    for _ in range(n_trees):
        phrases = [([int(x) for x in rng.integers(0, tokens, int(rng.integers(1, 5)))], float(rng.uniform(0.5, 4)))
                   for _ in range(int(rng.integers(1, 6)))]
        trees.append(build_tree(phrases))
    return trees


def test_no_net_bonus_on_any_sequence_without_a_finished_phrase():
    rng = np.random.default_rng(0)
    for tree in random_trees(rng, 60, tokens=6):
        phrases = tree.phrases
        for _ in range(40):
            # ends on a label no phrase has
            seq = [int(x) for x in rng.integers(0, 6, int(rng.integers(1, 12)))] + [VOCAB - 2]
            contains = any(seq[i:i + len(p)] == p for p in phrases for i in range(len(seq)))
            score, _ = total(tree, seq)
            assert score >= -1e-9
            if not contains:
                assert score == pytest.approx(0.0, abs=1e-9)
            else:
                assert score > 0


def test_pool_matches_the_tree_walk_after_adds_removes_and_growth():
    rng = np.random.default_rng(1)
    gens = []
    pool = BoostPool(rows=6, blank=BLANK, device="cpu", on_realloc=lambda: gens.append(1))
    trees = random_trees(rng, 12)
    live: dict[int, tuple[int, object]] = {}  # slot -> (handle, tree)
    for step, tree in enumerate(trees):
        slot = 1 + step % 5
        if slot in live:
            pool.remove(live.pop(slot)[0])
        h = pool.add(tree)
        pool.attach(slot, h)
        live[slot] = (h, tree)
        if step == 6:
            pool.grow_rows(9)
        for s, (_, t) in live.items():  # every node of every live tree, every label
            for node in range(t.nodes):
                pool.node[s] = pool.root[s] + node
                rows = pool.rows(torch.tensor([s]))
                got = bonus(rows, VOCAB)[0]
                for v in range(VOCAB - 1):
                    nxt, gain = walk(t, node, v)
                    assert float(got[v]) == pytest.approx(gain, abs=1e-5)
                    r = pool.rows(torch.tensor([s]))
                    advance(r, torch.tensor([v]), torch.tensor([True]))
                    assert int(r.node[0] - pool.root[s]) == nxt
            pool.node[s] = pool.root[s]
    assert gens  # tables grew
    for h, _ in list(live.values()):
        pool.remove(h)
    assert not pool.active and all(int(pool.node[s]) == 0 for s in range(9))


def test_boosted_label_keeps_the_blank_decision_and_no_phrases_is_argmax():
    pool = BoostPool(rows=3, blank=BLANK, device="cpu")
    pool.attach(1, pool.add(build_tree([([5, 6], 10.0)])))
    logits = torch.randn(3, VOCAB)
    logits[:, BLANK] = -5
    rows = pool.rows(torch.tensor([0, 1, 2]))
    got, got_logit = boosted_labels(logits, rows, *reversed(logits.max(dim=1)))
    assert got[0] == logits[0, :BLANK].argmax() and got[2] == logits[2, :BLANK].argmax()
    assert got[1] == 5  # the bonus wins among non-blank labels
    assert torch.equal(got_logit, logits.gather(1, got[:, None])[:, 0])


def test_a_tie_between_an_arc_and_the_models_own_label_goes_to_the_lower_label():
    pool = BoostPool(rows=1, blank=BLANK, device="cpu")
    pool.attach(0, pool.add(build_tree([([5, 6], 2.0)])))
    rows = pool.rows(torch.tensor([0]))
    advance(rows, torch.tensor([5]), torch.tensor([True]))  # in the match: back -2, arc 6 gains 2 DEPTH_SCALING
    for own in (3, 8):  # the model's own label below and above the arc's
        logits = torch.full((1, VOCAB), -20.0)
        logits[0, own], logits[0, 6] = 1.0, -1.0 - 2.0 * DEPTH_SCALING  # boosted: 1 - 2 = that + 2 DEPTH_SCALING
        scores = (logits + bonus(rows, VOCAB))[0]
        assert scores[own] == scores[6] == scores.max()
        label, _ = boosted_labels(logits, rows, torch.tensor([own]), torch.tensor([1.0]))
        assert int(label[0]) == min(own, 6)


def test_boosted_labels_equal_the_argmax_of_logits_plus_bonus():
    """Without the (B, V) bonus table or a second maximum over the vocabulary: the same label as
    ``argmax(logits + bonus)`` over non-blank labels (ties to the lowest id) in every node of random
    trees, also with ties, in every row whose own maximum is not blank (the rows that emit)."""
    rng = np.random.default_rng(3)
    pool = BoostPool(rows=6, blank=BLANK, device="cpu")
    trees = random_trees(rng, 5)
    for slot, tree in enumerate(trees, start=1):
        pool.attach(slot, pool.add(tree))
    gen = torch.Generator().manual_seed(0)
    for trial in range(200):
        slots = torch.tensor([0, 1, 2, 3, 4, 5])
        for s in range(1, 6):
            pool.node[s] = pool.root[s] + int(rng.integers(trees[s - 1].nodes))
        rows = pool.rows(slots)
        logits = torch.randn(6, VOCAB, generator=gen)
        if trial % 4 == 0:  # ties: few distinct values
            logits = logits.round()
        if trial % 3 == 0:  # the model's own best label is often an arc's label
            for r in range(6):
                arcs = rows.arc_token[rows.node[r]]
                pick = arcs[arcs != BLANK]
                if len(pick):
                    logits[r, pick[int(rng.integers(len(pick)))]] = logits[r].max() + float(rng.integers(0, 2))
        logits[rng.random(6) < 0.2, BLANK] = 99.0  # rows that do not emit
        want = logits + bonus(rows, VOCAB)
        want[:, BLANK] = float("-inf")
        top_logit, top_label = logits.max(dim=1)
        label, label_logit = boosted_labels(logits, rows, top_label, top_logit)
        emits = top_label != BLANK
        assert torch.equal(label[emits], want.argmax(dim=1)[emits])
        assert torch.equal(label_logit[emits], logits.gather(1, label[:, None])[:, 0][emits])


def _decode_both(model, rng, b, chunks, pool, slots, sync_every):
    """Both decoders over ``chunks`` calls with boosting rows of ``slots``; state carried."""
    old, new = initial_decoder_state(model, b), initial_decoder_state(model, b)
    offset = torch.zeros(b, dtype=torch.long)
    nodes_old = pool.rows(slots).node.clone()
    nodes_new = nodes_old.clone()
    out_old, out_new = [[] for _ in range(b)], [[] for _ in range(b)]
    for _ in range(chunks):
        t = int(rng.integers(1, 7))
        enc = random_encoder(model, rng, b, t)
        valid = torch.from_numpy(rng.integers(0, t + 1, b))
        valid[rng.random(b) < 0.5] = t
        r_old, r_new = pool.rows(slots), pool.rows(slots)
        r_old.node.copy_(nodes_old)
        r_new.node.copy_(nodes_new)
        want = greedy_decode(model, enc, valid, old, offset, r_old)
        got = emissions_from_buffers(label_looping_decode(model, enc, valid, new, offset, sync_every=sync_every,
                                                          boost=r_new))
        nodes_old, nodes_new = r_old.node.clone(), r_new.node.clone()
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            assert g.token_ids == w.token_ids and g.frames == w.frames
            assert np.allclose(g.probs, w.probs, rtol=0, atol=1e-6)
            out_old[i] += w.token_ids
        assert torch.equal(nodes_old, nodes_new)
        offset = offset + valid
    return out_old


@pytest.mark.parametrize("seed", range(4))
def test_both_decoders_same_labels_with_boosting(seed):
    rng = np.random.default_rng(seed)
    model = tiny_model(seed, max_symbols=(1, 2, 3, 10)[seed], blank_bias=0.5)
    b = 6
    pool = BoostPool(rows=b + 1, blank=BLANK, device="cpu")
    slots = torch.arange(1, b + 1)
    for s, tree in zip(range(1, b), random_trees(rng, b - 1)):  # the last row has no phrases
        pool.attach(s, pool.add(tree))
    plain_rng, boost_rng = np.random.default_rng(100 + seed), np.random.default_rng(100 + seed)
    boosted = _decode_both(model, boost_rng, b, 5, pool, slots, sync_every=(0, 1)[seed % 2])
    # the same inputs without any boosting: the row without phrases emits the same labels
    empty = BoostPool(rows=b + 1, blank=BLANK, device="cpu")
    plain = _decode_both(model, plain_rng, b, 5, empty, slots, sync_every=1)
    assert boosted[-1] == plain[-1]
    assert boosted[:-1] != plain[:-1]  # the phrases changed something


def test_a_strong_boost_writes_the_phrase_where_the_model_emits():
    model = tiny_model(7, max_symbols=1, blank_bias=-20.0)  # never blank: every frame emits one label
    b, t = 1, 6
    enc = torch.randn(b, t, model.config.pred_hidden, dtype=torch.float64)
    pool = BoostPool(rows=2, blank=BLANK, device="cpu")
    pool.attach(1, pool.add(build_tree([([4, 9, 2], 50.0)])))
    rows = pool.rows(torch.tensor([1]))
    out = emissions_from_buffers(label_looping_decode(model, enc, torch.tensor([t]), initial_decoder_state(model, b),
                                                      torch.zeros(b, dtype=torch.long), boost=rows))
    assert out[0].token_ids[:3] == [4, 9, 2] and len(out[0].token_ids) == t


def test_label_looping_with_boosting_has_no_host_reads():
    model = tiny_model(0, max_symbols=3, dtype=torch.float32).to("meta")
    pool = BoostPool(rows=4, blank=BLANK, device="meta")
    b, t, h = 3, 4, model.config.pred_hidden
    meta = torch.device("meta")
    rows = pool.rows(torch.empty(b, dtype=torch.long, device=meta))
    state = initial_decoder_state(model, b)
    out = label_looping_decode(model, torch.empty(b, t, h, device=meta), torch.empty(b, dtype=torch.long, device=meta),
                               state, torch.empty(b, dtype=torch.long, device=meta), sync_every=0, boost=rows)
    assert out.token_ids.shape == (b, t * 3) and rows.node.device.type == "meta"
