"""Hotwords through the Python API on the shipped demo model: offline == streaming and batched ==
alone token for token with phrases, streams without phrases untouched, phrases kept across a
flush, trees freed at close, both decoders alike, limits and normalisation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import onepass
from onepass.decoding.phrases import (MAX_PHRASE_CHARS, MAX_PHRASES, Phrase, compile_phrases, hotword_settings,
                                      phrase_pieces, split_phrases, variants)
from onepass.engine import Engine, EngineConfig
from onepass.errors import OnePassError
from onepass.step import StepConfig

SAMPLES = Path(onepass.__file__).parent / "assets" / "samples"
EN_WORDS = [Phrase("grow", 4.0)]  # turns the en-US sample's "Go choose trial set west." into "Grow choose ..."


@pytest.fixture(scope="module")
def asr():
    return onepass.load_model("demo")


@pytest.fixture(scope="module")
def audio():
    return {lang: sf.read(SAMPLES / f"{lang}.wav", dtype="float32")[0] for lang in ("en-US", "de-DE", "es-ES",
                                                                                  "en-US-long")}


def streamed(asr, samples, language, chunk_ms, hotwords, piece=3000):
    session = asr.stream(language=language, chunk_ms=chunk_ms, hotwords=hotwords)
    for at in range(0, len(samples), piece):
        session.accept(samples[at:at + piece], 16000)
    return session.finish()


def test_a_hotword_fixes_a_misheard_word(asr, audio):
    """The long en-US sample's fifth sentence, "Describe forget grow, idea.", starts "Discribe" without help."""
    long = audio["en-US-long"]
    plain = asr.transcribe(long, 16000, language="en-US", chunk_ms=1120)
    boosted = asr.transcribe(long, 16000, language="en-US", chunk_ms=1120, hotwords=["Describe"])
    assert "Discribe forget" in plain.text and "Describe forget" in boosted.text
    assert asr.transcribe(long, 16000, language="en-US", chunk_ms=1120, hotwords=[]).token_ids == plain.token_ids


@pytest.mark.parametrize("chunk_ms", [pytest.param(80, marks=pytest.mark.slow), 560])
def test_offline_equals_streaming_with_hotwords(asr, audio, chunk_ms):
    for lang, words in (("en-US", EN_WORDS), ("de-DE", ["Haare", "dunkel kann"])):
        offline = asr.transcribe(audio[lang], 16000, language=lang, chunk_ms=chunk_ms, hotwords=words)
        assert streamed(asr, audio[lang], lang, chunk_ms, words).token_ids == offline.token_ids


@pytest.mark.parametrize("decoder", ["windowed", pytest.param("label_looping", marks=pytest.mark.slow)])
def test_batched_equals_alone_and_plain_streams_untouched(asr, audio, decoder):
    asr.configure_step(StepConfig(decoder=decoder))
    try:
        jobs = [("en-US", EN_WORDS), ("de-DE", None), ("en-US", None)]
        alone = [asr.transcribe(audio[lang], 16000, language=lang, hotwords=h).token_ids for lang, h in jobs]
        engine = Engine(asr, EngineConfig(max_batch=8))
        ids = [engine.open(lang, hotwords=h) for lang, h in jobs]
        for sid, (lang, _) in zip(ids, jobs):
            engine.accept(sid, audio[lang])
            engine.finish(sid)
        closed = {e.stream_id: e.transcript for e in engine.run_until_idle() if e.kind == "closed"}
        assert [closed[sid].token_ids for sid in ids] == alone
        assert max(engine.last_batches or (0,)) >= 1
        assert alone[1] == asr.transcribe(audio["de-DE"], 16000, language="de-DE").token_ids
        assert alone[0] != alone[2]  # the phrases made a difference in the batch too
        assert all(not pool.boost.trees and not pool.boost.active for pool in engine.pools.values())
    finally:
        asr.configure_step(StepConfig())


def test_batched_offline_equals_one_by_one(asr, audio):
    auds = [audio["en-US"], audio["es-ES"], audio["en-US"]]
    lists = [EN_WORDS, ["Rodríguez"], None]
    batch = asr.transcribe_batch(auds, language=["en-US", "es-ES", "en-US"], hotwords=lists)
    one = [asr.transcribe(a, 16000, language=lang, hotwords=h)
           for a, lang, h in zip(auds, ["en-US", "es-ES", "en-US"], lists)]
    assert [t.token_ids for t in batch] == [t.token_ids for t in one]
    assert batch[0].token_ids != batch[2].token_ids


def test_phrases_survive_a_flush(asr, audio):
    a = audio["en-US"]
    session = asr.stream(language="en-US", hotwords=EN_WORDS)
    session.accept(a, 16000)
    session.flush()
    session.accept(a, 16000)
    final = session.finish()
    one = asr.transcribe(a, 16000, language="en-US", hotwords=EN_WORDS).token_ids
    assert final.token_ids == one + one


def test_per_phrase_boost_and_default_boost(asr, audio):
    plain = asr.transcribe(audio["en-US"], 16000, language="en-US")
    for boost in (0.01, None):  # a small one and the default: too little for this word
        weak = asr.transcribe(audio["en-US"], 16000, language="en-US", hotwords=["grow"], hotword_boost=boost)
        assert weak.token_ids == plain.token_ids and plain.text.startswith("Go choose")
    own = asr.transcribe(audio["en-US"], 16000, language="en-US", hotwords=EN_WORDS, hotword_boost=0.01)
    assert own.text.startswith("Grow choose")  # the phrase's own boost, not the stream's


def test_limits_are_user_errors(asr):
    with pytest.raises(OnePassError, match="at most"):
        asr.stream(hotwords=[f"w{i}" for i in range(MAX_PHRASES + 1)])
    with pytest.raises(OnePassError, match="longer than"):
        asr.transcribe(np.zeros(1600, np.float32), 16000, hotwords=["x" * (MAX_PHRASE_CHARS + 1)])
    with pytest.raises(OnePassError, match="pieces"):
        asr.stream(hotwords=["ß" * 40])
    for bad in (0, -1, "loud", float("nan"), 100):
        with pytest.raises(OnePassError, match="boost"):
            asr.stream(hotwords=["go"], hotword_boost=bad)
    engine = Engine(asr)
    with pytest.raises(OnePassError):
        engine.open("en-US", hotwords=["ok", Phrase("bad", -2)])
    assert not engine.streams


def test_normalisation_to_what_the_model_writes(asr):
    assert variants("  new   york, ", cased=True) == ["new york", "New york"]
    assert variants("¿Qué?", cased=True) == ["Qué"]
    assert variants("don't", cased=False) == ["don't"]
    assert variants("NVIDIA", cased=False) == ["nvidia"]
    assert variants("...", cased=True) == []
    assert split_phrases("go, west;\n new  york ,,") == ["go", "west", "new york"]
    assert split_phrases("A call about GPUs. Nemotron! 3.5 kW") == ["A call about GPUs", "Nemotron", "3.5 kW"]
    pieces = phrase_pieces(asr.tokenizer, hotword_settings(["go!", "Go", "set west"]))
    assert [asr.tokenizer.encode(t) for t in ("go", "Go", "set west", "Set west")] == [p for p, _ in pieces]


def test_depth_scaling_of_the_settings_reaches_the_tree(asr):
    settings = hotword_settings(["trial set"], 2.0)
    pieces = [p for p, _ in phrase_pieces(asr.tokenizer, settings)]
    assert all(len(p) >= 2 for p in pieces)
    for d in (0.5, 2.0):
        tree = compile_phrases(asr.tokenizer, replace(settings, depth_scaling=d))
        node, gains = 0, []
        for tok in pieces[0]:  # walk the first spelling's arcs from the root
            _, node, gain = next(a for a in tree.arcs[node] if a[0] == tok)
            gains.append(gain)
        assert gains == [2.0] + [2.0 * d] * (len(pieces[0]) - 1)
