"""Language codes, tags and clean text."""

from __future__ import annotations

import pytest

from onepass import OnePassError


@pytest.mark.parametrize("code,slot,canonical", [
    ("en", 0, "en-US"), ("en-US", 0, "en-US"), ("en_us", 0, "en-US"), ("EN-us", 0, "en-US"),
    ("de", 9, "de-DE"), ("es-ES", 2, "es-ES"), ("es", 3, "es-US"), ("hi", 6, "hi-IN"), ("ja", 10, "ja-JP"),
])
def test_codes_resolve_to_prompt_slots(asr, code, slot, canonical):
    lang = asr.language(code)
    assert (lang.prompt, lang.code, lang.auto) == (slot, canonical, False)


def test_auto_and_default(asr):
    assert asr.language("auto").prompt == 101 and asr.language("auto").auto
    assert asr.language(None).auto  # the checkpoint's default prompt is auto


@pytest.mark.parametrize("code", ["xx", "english", "", "en-XX"])
def test_unknown_codes_are_errors(asr, code):
    with pytest.raises(OnePassError, match="unknown language"):
        asr.language(code)


def test_tags_are_parsed_and_stripped(asr):
    from onepass.decoding.text import render

    tok = asr.tokenizer
    ids = [tok.pieces.index(p) for p in ("<de-DE>", "\u2581s", "s", "<en-US>", "\u2581s")]
    text, tags, _ = render(tok, ids, list(range(5)), [1.0] * 5, 0.08)
    assert (text, tags) == ("ss s", ["de-DE", "en-US"])


def test_auto_mode_reports_detected_language(asr):
    from onepass.decoding.greedy import Emissions
    from onepass.recognizer import make_transcript

    tok = asr.tokenizer
    ids = [tok.pieces.index("<es-ES>"), tok.pieces.index("\u2581s"), tok.pieces.index("s")]
    t = make_transcript(tok, asr.language("auto"), Emissions(ids, [0, 1, 2], [0.9, 0.8, 0.7]), 1.0)
    assert (t.text, t.language, t.language_detected) == ("ss", "es-ES", True)
    assert [w.word for w in t.words] == ["ss"] and t.words[0].start_s == pytest.approx(0.08)
    t = make_transcript(tok, asr.language("de"), Emissions(ids[1:], [1, 2], [0.8, 0.7]), 1.0)
    assert (t.language, t.language_detected) == ("de-DE", False)
