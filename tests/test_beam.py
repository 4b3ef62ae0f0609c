"""Beam search (``onepass.decoding.beam``) through the model step: offline == streaming, batched ==
alone, with and without phrases; the pending-label bounds; the ways in (``load_model(beam=)``, CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import onepass
from onepass.audio import load_for_model
from onepass.decoding.beam import beam_decode, initial_beam_state
from onepass.decoding.label_looping import emissions_from_buffers
from onepass.decoding.phrases import BEAM_BOOST, DEFAULT_BOOST, compile_phrases, hotword_settings
from onepass.errors import OnePassError
from tests.test_hotwords_engine import streamed

SAMPLES = Path(onepass.__file__).parent / "assets" / "samples"
FILES = ["en-US.wav", "de-DE.wav", "es-ES.wav", "en-US-long.wav"]
LANGS = ["en-US", "de-DE", "es-ES", "en-US"]


@pytest.fixture(scope="module")
def beam_asr():
    return onepass.load_model("demo", backend="torch", beam=4)


@pytest.fixture(scope="module")
def audios():
    return [load_for_model(str(SAMPLES / f))[0] for f in FILES]


@pytest.mark.parametrize("chunk_ms", [80, 1120])
@pytest.mark.parametrize("hotwords", [None, ["Describe", "officer"]])
def test_offline_equals_streaming_and_batched_equals_alone(beam_asr, audios, chunk_ms, hotwords):
    batched = beam_asr.transcribe_batch(audios, language=LANGS, chunk_ms=chunk_ms, hotwords=hotwords)
    assert all(t.token_ids for t in batched)
    for audio, lang, t in zip(audios, LANGS, batched):
        alone = beam_asr.transcribe_batch([audio], language=lang, chunk_ms=chunk_ms, hotwords=hotwords)[0]
        assert alone.token_ids == t.token_ids
        assert streamed(beam_asr, audio, lang, chunk_ms, hotwords, piece=1234).token_ids == t.token_ids


def test_rows_with_and_without_phrases_share_a_batch(beam_asr, audios):
    mixed = beam_asr.transcribe_batch(audios[:2], language=LANGS[:2], hotwords=[["Describe"], None])
    plain = beam_asr.transcribe_batch([audios[1]], language=LANGS[1])[0]
    boosted = beam_asr.transcribe_batch([audios[0]], language=LANGS[0], hotwords=["Describe"])[0]
    assert mixed[1].token_ids == plain.token_ids
    assert mixed[0].token_ids == boosted.token_ids


def test_boosting_brings_a_listed_word_in(beam_asr, audios):
    """The long sample's "Discribe" (greedy and beam alike) becomes the listed "Describe"."""
    greedy = onepass.load_model("demo", backend="torch").transcribe(audios[3], 16000, language="en-US", chunk_ms=1120)
    assert "Discribe" in greedy.text
    plain = beam_asr.transcribe(audios[3], 16000, language="en-US", chunk_ms=1120)
    assert "Describe" not in plain.text
    boosted = beam_asr.transcribe(audios[3], 16000, language="en-US", chunk_ms=1120, hotwords=["Describe"])
    assert "Describe" in boosted.text and "Discribe" not in boosted.text
    assert len(boosted.text.split()) == len(plain.text.split())


def test_default_boost_follows_the_decoding(beam_asr):
    settings = hotword_settings(["officer"])
    gains = {beam: max(g for _, _, g in compile_phrases(beam_asr.tokenizer, settings, beam).arcs[0])
             for beam in (1, 4)}
    assert gains == {1: DEFAULT_BOOST, 4: BEAM_BOOST}
    own = compile_phrases(beam_asr.tokenizer, hotword_settings(["officer"], 3.0), 4)
    assert max(g for _, _, g in own.arcs[0]) == 3.0


def test_pending_labels_are_bounded_and_chunks_change_nothing():
    """Random encoder frames and a joint that seldom says blank (labels on most frames): pending labels
    never pass their bound, every label is emitted by the last call, frames never go back, and one call
    per frame gives what one call for all does."""
    model = onepass.load_model("demo", backend="torch", prepack=False).model
    with torch.no_grad():
        model.joint.head.bias[model.config.blank_id] -= 15.0
    torch.manual_seed(0)
    b, t, pending = 3, 80, 8
    enc = 3 * torch.randn(b, t, model.config.pred_hidden)
    valid = torch.tensor([80, 25, 1])

    def run(step):
        state = initial_beam_state(model, b, 4, pending)
        out = [[] for _ in range(b)]
        for s in range(0, t, step):
            n = (valid - s).clamp(min=0, max=step)
            state, buffers = beam_decode(model, enc[:, s:s + step], n, state, torch.full((b,), s),
                                         valid <= s + step)
            em = emissions_from_buffers(buffers)
            assert int(state.length.max()) <= pending
            for row, e in zip(out, em):
                row += list(zip(e.token_ids, e.frames))
        assert int(state.length[state.score > float("-inf")].max()) == 0  # all emitted
        return out

    whole, framewise = run(t), run(1)
    assert whole == framewise
    assert len(whole[0]) > 30 and len(whole[1]) > 5
    for row, n in zip(whole, valid.tolist()):
        frames = [f for _, f in row]
        assert frames == sorted(frames) and all(0 <= f < n for f in frames)


def test_bad_beam_sizes_are_user_errors(tmp_path):
    with pytest.raises(OnePassError, match="beam size"):
        onepass.load_model("demo", backend="torch", beam=0)
    proc = subprocess.run([sys.executable, "-m", "onepass", "transcribe", "--beam", "17", "--backend", "torch",
                           str(SAMPLES / "en-US.wav")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "beam size must be 1 to 16" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_beam_with_hotwords():
    proc = subprocess.run([sys.executable, "-m", "onepass", "transcribe", "--beam", "4", "--backend", "torch",
                           "--chunk-ms", "1120", "--hotwords", "Describe", "-l", "en-US",
                           str(SAMPLES / "en-US-long.wav")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Describe forget" in proc.stdout


def _engine_run(asr, audio, opened_with, changes):
    """One engine stream of ``audio`` (en-US, 160 ms): opened with ``opened_with`` phrases; ``changes``:
    (samples fed before, new phrases) pairs applied with ``set_hotwords``."""
    from onepass.engine import Engine, EngineConfig

    engine = Engine(asr, EngineConfig(endpoint_blank_ms=None))
    sid = engine.open("en-US", 160, hotwords=opened_with)
    at = 0
    for upto, phrases in changes:
        engine.accept(sid, audio[at:upto])
        engine.run_until_idle()
        engine.set_hotwords(sid, phrases)
        at = upto
    engine.accept(sid, audio[at:])
    engine.finish(sid)
    closed = [e.transcript for e in engine.run_until_idle() if e.kind == "closed"]
    return closed[0].token_ids


@pytest.mark.parametrize("beam", [1, 4])
def test_set_hotwords_before_and_during_a_stream(audios, beam):
    """Phrases set before any audio equal phrases given at open; phrases changed mid-stream (a larger tree,
    then none, then a small one: each hypothesis restarts at the new tree's root) keep decoding, and a
    change after the last listed word changes nothing before it."""
    asr = onepass.load_model("demo", backend="torch", beam=beam)
    audio = audios[3]
    words = ["radio"]  # 160 ms: "raio" without the phrase
    boosted = asr.transcribe(audio, 16000, language="en-US", chunk_ms=160, hotwords=words).token_ids
    plain = asr.transcribe(audio, 16000, language="en-US", chunk_ms=160).token_ids
    assert boosted != plain
    assert _engine_run(asr, audio, None, [(0, words)]) == boosted
    assert _engine_run(asr, audio, words, [(0, None)]) == plain
    many = words + [f"w{i} officer audience" for i in range(40)]
    mixed = _engine_run(asr, audio, None, [(16000, many), (48000, None), (64000, words)])
    assert mixed and max(mixed) < asr.config.vocab_size
    assert _engine_run(asr, audio, words, [(len(audio) - 8000, ["officer"])]) == boosted


def test_phrases_survive_a_flush_with_beam(beam_asr, audios):
    a = audios[0]
    session = beam_asr.stream(language="en-US", hotwords=["go"])
    session.accept(a, 16000)
    session.flush()
    session.accept(a, 16000)
    one = beam_asr.transcribe(a, 16000, language="en-US", hotwords=["go"]).token_ids
    assert session.finish().token_ids == one + one


@pytest.mark.parametrize("samples", [0, 1, 159, 1281, 16001])
def test_odd_lengths_with_beam(beam_asr, samples):
    rng = torch.Generator().manual_seed(samples)
    audio = (0.1 * torch.randn(samples, generator=rng)).numpy()
    offline = beam_asr.transcribe(audio, 16000, language="en-US", chunk_ms=80, hotwords=["go"]).token_ids
    assert streamed(beam_asr, audio, "en-US", 80, ["go"], piece=97).token_ids == offline


def test_a_new_tree_restarts_every_hypothesis_at_its_root(beam_asr):
    """Hypotheses keep their node relative to the stream's tree root; a stream given another tree
    (``set_hotwords``) mid-match must not keep an index into the old one."""
    from onepass.step import ModelStep, StepConfig

    arena = ModelStep(beam_asr.model, StepConfig(beam=4)).arena(beam_asr.config.default_right_context, capacity=2)
    slot = arena.acquire()
    big = compile_phrases(beam_asr.tokenizer, hotword_settings(["officer audience", "Describe forget"]), 4)
    small = compile_phrases(beam_asr.tokenizer, hotword_settings(["go"]), 4)
    arena.attach_boost(slot, arena.boost.add(big))
    arena.beam.node[slot] = torch.tensor([big.nodes - 1, 3, 0, 2])  # mid-match in the big tree
    arena.attach_boost(slot, arena.boost.add(small))
    assert arena.beam.node[slot].tolist() == [0, 0, 0, 0]
    assert int(arena.boost.node[slot]) == int(arena.boost.root[slot])


def test_a_row_past_its_frames_keeps_its_hypotheses():
    """In a call where a row has fewer frames than the others, the frames it does not have force
    nothing on it: its labels equal those of a call of its own frames only."""
    model = onepass.load_model("demo", backend="torch", prepack=False).model
    with torch.no_grad():
        model.joint.head.bias[model.config.blank_id] -= 15.0
    torch.manual_seed(1)
    enc = 3 * torch.randn(2, 30, model.config.pred_hidden)

    def labels(t_max, valid, final):
        state = initial_beam_state(model, 2, 4)
        state, buffers = beam_decode(model, enc[:, :t_max], torch.tensor(valid), state,
                                     torch.zeros(2, dtype=torch.long), torch.tensor(final))
        return state, emissions_from_buffers(buffers)

    s_long, e_long = labels(30, [30, 12], [False, False])
    s_short, e_short = labels(12, [12, 12], [False, False])
    assert vars(e_long[1]) == vars(e_short[1])
    assert torch.equal(s_long.score[1], s_short.score[1]) and torch.equal(s_long.tokens[1], s_short.tokens[1])
