"""Text: NeMo's offline text for the same token ids, offline and streaming; words follow the text.

References: tests/fixtures/nemo/text_references.json, made by NeMo 3.0 itself
(tools/nemo_fixtures/make_text_references.py: ``decode_tokens_to_str_with_strip_punctuation`` with
language tags stripped) from the fixtures' recorded token ids and from random sequences that stress
punctuation after spaces, tags, byte-fallback runs and ``<unk>``. Text is compared exactly.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

import pytest

import onepass
from onepass.decoding.text import IncrementalText, TextRule, ends_word, render, starts_word
from onepass.tokenizer import Tokenizer, decode_bytes

FIXTURES = Path(__file__).parent / "fixtures" / "nemo"
TEXT_REFS = json.loads((FIXTURES / "text_references.json").read_text(encoding="utf-8"))
MODELS = sorted(TEXT_REFS["models"])


@lru_cache(maxsize=None)
def tokenizer(name: str) -> Tokenizer:
    return onepass.load_model(FIXTURES / f"{name}.nemo").tokenizer


def stream_text(tok: Tokenizer, ids: list[int], rng: random.Random):
    """Feed ids in random groups (0..3 per update, as chunks deliver them); return the text, the
    concatenated deltas, every text seen, and the words."""
    inc = IncrementalText(tok, 0.08)
    frames, probs = list(range(len(ids))), [0.5] * len(ids)
    seen, deltas, words, n = [], [], [], 0
    while n < len(ids):
        n = min(len(ids), n + rng.randint(0, 3))
        text, delta, new = inc.update(ids[:n], frames[:n], probs[:n])
        seen.append(text), deltas.append(delta), words.extend(new)
    text, delta, new = inc.update(ids, frames, probs, final=True)
    seen.append(text), deltas.append(delta), words.extend(new)
    return text, "".join(deltas), seen, words


@pytest.mark.parametrize("name", MODELS)
def test_punctuation_set_is_nemos(name):
    assert sorted(tokenizer(name).punctuation) == TEXT_REFS["models"][name]["supported_punctuation"]


@pytest.mark.parametrize("name", MODELS)
def test_offline_text_equals_nemo(name):
    rule = TextRule(tokenizer(name))
    cases = TEXT_REFS["models"][name]["cases"]
    wrong = [(c["token_ids"], rule.text(c["token_ids"]), c["text"]) for c in cases
             if rule.text(c["token_ids"]) != c["text"]]
    assert not wrong, f"{len(wrong)} of {len(cases)} differ, first: {wrong[:3]}"


@pytest.mark.parametrize("name", MODELS)
def test_streaming_text_ends_equal_to_nemo_and_never_retracts(name):
    tok = tokenizer(name)
    rng = random.Random(7)
    for case in TEXT_REFS["models"][name]["cases"]:
        text, joined, seen, words = stream_text(tok, case["token_ids"], rng)
        assert text == joined == case["text"], case["token_ids"]
        assert all(b.startswith(a) for a, b in zip(seen, seen[1:])), seen
        assert [w.word for w in words] == case["text"].split(), case["token_ids"]


@pytest.mark.parametrize("name", MODELS)
def test_offline_words_follow_the_text(name):
    tok = tokenizer(name)
    for case in TEXT_REFS["models"][name]["cases"][:200]:
        ids = case["token_ids"]
        text, _, words = render(tok, ids, list(range(len(ids))), [1.0] * len(ids), 0.08)
        assert [w.word for w in words] == text.split()
        assert all(w.start_s < w.end_s for w in words)
        assert [w.start_s for w in words] == sorted(w.start_s for w in words)


def test_trailing_space_is_held_back_until_the_next_piece_decides():
    tok = tokenizer("tiny_nemotron35")
    p = tok.pieces.index
    inc = IncrementalText(tok, 0.08)
    ids = [p("\u2581wor"), p("\u2581"), p("."), p("\u2581")]
    assert inc.update(ids[:2], [0, 1], [1, 1])[:2] == ("wor", "wor")  # " " held back
    assert inc.update(ids[:3], [0, 1, 2], [1, 1, 1])[:2] == ("wor.", ".")  # NeMo drops it before "."
    text, delta, words = inc.update(ids, [0, 1, 2, 3], [1] * 4, final=True)
    assert (text, delta, [w.word for w in words]) == ("wor.", "", ["wor."])
    assert words[0].start_s == 0 and words[0].end_s == pytest.approx(3 * 0.08)


def test_word_ends_are_decided_by_punctuation_or_the_next_piece():
    """What the engine's endpoint waits on (a final never ends inside a word)."""
    pieces = ["<blank>", "\u2581her", "s", ".", ",", "?", "'", "\u2581", "<0xE4>", "<en-US>", "\u4e2d", "-", "<unk>"]
    tok = Tokenizer(pieces, blank_id=0)
    p = pieces.index
    assert not ends_word(tok, p("\u2581her")) and not ends_word(tok, p("s"))  # "hers" + "elf" may follow
    assert not ends_word(tok, p("'")) and not ends_word(tok, p("-")) and not ends_word(tok, p("<0xE4>"))
    assert all(ends_word(tok, p(x)) for x in (".", ",", "?", "\u2581", "<en-US>", "\u4e2d", "<unk>"))
    assert starts_word(tok, p("\u2581her")) and starts_word(tok, p("<en-US>")) and starts_word(tok, p("<unk>"))
    assert not starts_word(tok, p("s")) and not starts_word(tok, p(".")) and not starts_word(tok, p("<0xE4>"))


def test_tags_are_stripped_with_the_space_before_them():
    tok = tokenizer("tiny_nemotron35")
    p = tok.pieces.index
    ids = [p("<de-DE>"), p("\u2581wor"), p("\u2581"), p("<en-US>"), p("ee"), p("\u2581s")]
    text, tags, words = render(tok, ids, list(range(6)), [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], 0.08)
    assert (text, tags) == ("woree s", ["de-DE", "en-US"])  # NeMo: "\s*<xx-XX>" removed, then strip
    assert [(w.word, w.start_s) for w in words] == [("woree", pytest.approx(0.08)), ("s", pytest.approx(0.4))]
    assert words[0].confidence == pytest.approx((0.8 + 0.7 + 0.5) / 3)  # the tag's token is not the word's


def test_byte_runs_decode_as_sentencepiece_does():
    spm = pytest.importorskip("sentencepiece")
    import tarfile
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(FIXTURES / "tiny_nemotron35.nemo") as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("tokenizer.model"))
            tar.extract(member, tmp, filter="data")
        sp = spm.SentencePieceProcessor(model_file=str(Path(tmp) / member.name))
    rng = random.Random(3)
    for _ in range(2000):
        data = bytes(rng.choice([rng.randint(0, 255), rng.choice(b"\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80")])
                     for _ in range(rng.randint(1, 8)))
        assert decode_bytes(data) == sp.decode_pieces([f"<0x{b:02X}>" for b in data]), data
