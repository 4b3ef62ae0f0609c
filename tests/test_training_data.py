"""Inputs of onepass.training: manifest checks, the tokenizer report, batches, SpecAugment, schedules."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from onepass.errors import OnePassError
from onepass.training.data import collate, make_batches
from onepass.training.manifest import read_training_manifest
from onepass.training.schedule import lr_at
from onepass.training.settings import AugmentSettings, BatchSettings, OptimSettings
from onepass.training.text import coverage, normalize_target

DEMO = Path(__file__).resolve().parents[1] / "onepass" / "assets" / "demo"


def _wav(path: Path, seconds: float) -> Path:
    sf.write(path, np.zeros(int(16000 * seconds), np.float32), 16000)
    return path


def test_bad_manifest_lines_are_listed_and_skipped(tmp_path):
    good = _wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav file")
    _wav(tmp_path / "long.wav", 3.0)
    lines = [
        {"audio_filepath": str(good), "text": "  Hello\u00a0 world ", "lang": "en-US"},
        {"audio_filepath": "a.wav", "text": "relative path"},  # relative to the manifest's folder
        {"audio_filepath": str(tmp_path / "missing.wav"), "text": "x"},
        {"audio_filepath": str(good), "text": "   "},
        {"audio_filepath": str(tmp_path / "broken.wav"), "text": "x"},
        {"audio_filepath": str(tmp_path / "long.wav"), "text": "x"},
        {"text": "no audio"},
    ]
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n\n", encoding="utf-8")
    utts, problems = read_training_manifest(m, max_utterance_s=2.0)
    assert [u.text for u in utts] == ["Hello world", "relative path"]
    assert utts[0].lang == "en-US" and utts[1].lang is None and utts[1].audio_path == good
    assert abs(utts[0].duration_s - 0.5) < 1e-6
    reasons = {p.line: p.reason for p in problems}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8]
    assert "missing audio" in reasons[3] and reasons[4] == "empty text" and "unreadable audio" in reasons[5]
    assert "longer than 2 s" in reasons[6] and reasons[7] == "no audio_filepath" and "not JSON" in reasons[8]
    m.write_text(json.dumps(lines[2]) + "\n")
    with pytest.raises(OnePassError, match="no usable lines"):
        read_training_manifest(m)
    with pytest.raises(OnePassError, match="cannot read manifest"):
        read_training_manifest(tmp_path / "absent.jsonl")


def test_normaliser_keeps_case_and_punctuation():
    assert normalize_target("  Cafe\u0301,\tsi  NO! ") == "Caf\u00e9, si NO!"


def test_coverage_counts_byte_fallback_and_unknown_pieces():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(DEMO / "tokenizer.json"))
    vocab = tok.get_vocab()
    byte_ids = {i for p, i in vocab.items() if p.startswith("<0x") and p.endswith(">")}

    def encode(text):
        enc = tok.encode(text, add_special_tokens=False)
        return enc.ids, enc.tokens

    assert byte_ids  # the demo tokenizer has byte fallback
    plain = coverage(["the west"], encode, vocab["<unk>"], byte_ids)
    assert plain.byte_tokens == 0 and plain.words == 2
    greek = coverage(["the \u03b1\u03b2 west"], encode, vocab["<unk>"], byte_ids)  # Greek: not in the demo vocabulary
    assert greek.byte_tokens == 4 and greek.byte_rate == pytest.approx(4 / greek.tokens)  # two 2-byte letters
    assert {c for c, _ in greek.byte_chars} == {"\u03b1", "\u03b2"}
    assert any("byte fallback" in line for line in greek.lines())


def test_batches_respect_the_audio_budget_and_cover_every_utterance():
    rng = random.Random(0)
    lengths = [rng.randint(100, 1500) for _ in range(200)]  # mel frames
    cfg = BatchSettings(batch_seconds=30.0, max_utterances=8)
    batches = make_batches(lengths, cfg, random.Random(1))
    assert sorted(i for b in batches for i in b) == list(range(200))
    for b in batches:
        assert len(b) <= 8
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 3000
    assert make_batches(lengths, cfg, random.Random(1)) == batches  # seeded


def test_spec_augment_masks_inside_each_utterance_and_zeroes_padding():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(50, 16) + 5, torch.randn(30, 16) + 5]
    batch = collate(feats, [[1, 2], [3]], [0, 0], AugmentSettings(freq_masks=2, freq_mask_bins=4, time_masks=2,
                                                                  time_mask_fraction=0.2), g)
    assert batch.feats.shape == (2, 50, 16) and batch.mask.sum(-1).tolist() == [50, 30]
    assert torch.all(batch.feats[1, 30:] == 0)
    assert batch.labels.tolist() == [[1, 2], [3, 0]] and batch.label_lengths.tolist() == [2, 1]
    changed = (batch.feats[0] != feats[0]).float().mean()
    assert 0 < changed < 0.6  # some masking, most of the utterance kept
    plain = collate(feats, [[1], [2]], [0, 0])
    assert torch.equal(plain.feats[0], feats[0]) and plain.audio_s == pytest.approx(0.8)


@pytest.mark.parametrize("schedule,end", [("cosine", 0.05), ("linear", 0.05), ("constant", 1.0)])
def test_schedules_warm_up_then_decay_to_their_floor(schedule, end):
    cfg = OptimSettings(lr=1e-3, schedule=schedule, warmup_steps=10, lr_floor=0.05)
    assert lr_at(0, 100, cfg) == pytest.approx(1e-4) and lr_at(9, 100, cfg) == pytest.approx(1e-3)
    assert lr_at(10, 100, cfg) == pytest.approx(1e-3)
    assert lr_at(100, 100, cfg) == pytest.approx(end * 1e-3)
    lrs = [lr_at(s, 100, cfg) for s in range(10, 101)]
    assert all(a >= b - 1e-12 for a, b in zip(lrs, lrs[1:]))
    assert lr_at(50, 100, cfg, time_fraction=1.0) == pytest.approx(end * 1e-3)  # a deadline squeezes the decay
    assert lr_at(90, 100, cfg, time_fraction=0.0) == lr_at(90, 100, cfg)  # never slower than by steps
