"""Issue 35: the shipped demo model keeps transcribing through multi-sentence streams.

Streams are held-out sentences (the model card's held-out generator: make_corpus.py's test split, unseen
sentences spoken by voice variants never used in training, rendered here with espeak-ng the way the
held-out set of record is) that the model gets exactly right alone, joined with pauses of 0 to 1 s of
silence. Before issue 35 the model stopped after the first sentence of such a stream (at every chunk size,
offline and streamed): its prediction network had only ever seen a sentence end followed by the end of
the audio. Skipped without espeak-ng (the CI installs it).
"""

from __future__ import annotations

import asyncio
import random
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import onepass

from tools.demo_model import longform  # the repository root is on sys.path (tests/conftest.py)

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed (the CI installs it)")

CHUNKS = (80, 160, 320, 560, 1120)  # the demo model's right contexts 0, 1, 3, 6, 13
CANDIDATES = 30  # held-out clips per language rendered to choose from
PER_STREAM = 6


def _normalize(text: str) -> str:
    from onepass.evaluation import normalize

    return normalize(text)


@lru_cache(maxsize=None)
def _asr():
    return onepass.load_model("demo")


_RENDER_DIR: dict[str, Path] = {}


@lru_cache(maxsize=None)
def heldout(lang: str, n: int = CANDIDATES) -> tuple:
    """The first n clips of the held-out split of record for ``lang`` ((audio, text), ...): the same
    sentences, voices and settings as ``make_corpus.py --out /work/heldout --train-per-lang 4000
    --test-per-lang 150 --words-per-lang 400 --splits test`` (the first block's clips come out alike)."""
    import tempfile

    from tools.demo_model import make_corpus

    li = list(make_corpus.LANGUAGES).index(lang)
    locale, _ = make_corpus.LANGUAGES[lang]
    sents = make_corpus.make_sentences(locale, 4150, seed=li, words_per_lang=400)[4000: 4000 + n]
    out = Path(tempfile.mkdtemp(prefix="onepass_longform_"))
    _RENDER_DIR[lang] = out
    items = make_corpus.plan(out, "test", lang, sents, make_corpus.TEST_VARIANTS, seed=li * 10 + 1)
    make_corpus.render(items, workers=1, block=256)
    clips = tuple((sf.read(it.path, dtype="float32")[0], it.text) for it in items)
    shutil.rmtree(out, ignore_errors=True)
    return clips


@lru_cache(maxsize=None)
def right_alone(lang: str, chunk_ms: int, n: int = CANDIDATES) -> tuple:
    """Indices of the held-out clips the model transcribes exactly (normalised words) alone."""
    asr = _asr()
    clips = heldout(lang, n)
    outs = []
    for s in range(0, len(clips), 8):
        outs += asr.transcribe_batch([a for a, _ in clips[s: s + 8]], language=lang, chunk_ms=chunk_ms)
    return tuple(i for i, ((_, text), o) in enumerate(zip(clips, outs)) if _normalize(o.text) == _normalize(text))


def transcribe(audio: np.ndarray, lang: str, chunk_ms: int, mode: str, seed: int = 0) -> str:
    asr = _asr()
    if mode == "offline":
        return asr.transcribe(audio, 16000, language=lang, chunk_ms=chunk_ms).text
    session = asr.stream(language=lang, chunk_ms=chunk_ms)
    rng = random.Random(seed)
    s = 0
    while s < len(audio):  # pieces of 20-700 ms, not aligned to the chunk
        n = int(16000 * rng.uniform(0.02, 0.7))
        session.accept(audio[s: s + n], 16000)
        s += n
    return session.finish().text


def stream_of(lang: str, idx: list[int], seed: int, pause_max: float = 1.0) -> tuple[np.ndarray, list[str]]:
    clips = heldout(lang)
    rng = random.Random(seed)
    pauses = [0.0] + [rng.uniform(0.0, pause_max) for _ in idx[1:]]
    return longform.join_audio([clips[i][0] for i in idx], pauses), [_normalize(clips[i][1]) for i in idx]


CASES = [(lang, c) for c in (80, 1120) for lang in ("en-US", "es-ES", "de-DE")] + [("en-US", c) for c in (160, 320, 560)]

# Issue 35's goal (no sentence lost, the stream's WER within 0.05 of the sentences alone) is met by the
# shipped weights (avg34: 100 streams of six held-out sentences lose 2 of 600 at 1120 ms, 1 at 80 ms, of them one
# it gets right alone; stream WER 8.2 % against 7.1 % alone at 1120 ms, 11.8 % against 10.0 % at 80 ms;
# docs/demo_model.md) in some cases and through both servers, and not yet in the cases below, which are expected
# to fail until weights that meet it ship. One stream per case is a small sample: at scale
# (`evaluate_longform --right-alone`, 150 such streams per chunk size) avg35 passes this test in 117 and 67 of
# 150 streams at 1120 and 80 ms (avg34, which passed four of these cases, 115 and 75; avg32 105 and 66). The "keeps
# transcribing" tests hold what every long-form stage does, which run24 (one sentence per stream, then
# nothing) failed in every case.
GOAL_NOT_MET = pytest.mark.xfail(reason="issue 35's goal: the shipped demo model still garbles or drops some "
                                 "words at sentence joins (docs/demo_model.md, Long-form)", strict=False)
NOT_MET = {("en-US", 80), ("es-ES", 80), ("de-DE", 80), ("en-US", 160)}
STRICT_CASES = [pytest.param(*case, marks=GOAL_NOT_MET) if case in NOT_MET else case for case in CASES]


@lru_cache(maxsize=None)
def six_sentences(lang: str, chunk_ms: int, mode: str) -> tuple[list[str], str]:
    """Six held-out sentences the model gets right alone, joined with 0-1 s pauses: (references, the
    stream's normalised hypothesis)."""
    good = right_alone(lang, chunk_ms)
    assert len(good) >= 5, f"only {len(good)} of {CANDIDATES} held-out clips right alone"
    idx = list(good[:PER_STREAM])
    audio, refs = stream_of(lang, idx, seed=chunk_ms)
    return refs, _normalize(transcribe(audio, lang, chunk_ms, mode, seed=chunk_ms))


@pytest.mark.parametrize("mode", ["offline", "stream"])
@pytest.mark.parametrize("lang,chunk_ms", STRICT_CASES)
def test_demo_transcribes_a_multi_sentence_stream_as_well_as_its_sentences(lang, chunk_ms, mode):
    """The issue's goal: none lost and the stream's WER within 0.05 of the sentences alone (0: they were
    right alone)."""
    from onepass.evaluation import word_error_rate

    refs, hyp = six_sentences(lang, chunk_ms, mode)
    lost = longform.sentence_losses(refs, hyp)
    assert not any(lost), f"lost sentences {[r for r, x in zip(refs, lost) if x]}; hypothesis: {hyp!r}"
    wer = word_error_rate([" ".join(refs)], [hyp])
    assert wer <= 0.0 + 0.05, (wer, " ".join(refs), hyp)


@pytest.mark.parametrize("mode", ["offline", "stream"])
@pytest.mark.parametrize("lang,chunk_ms", CASES)
def test_demo_keeps_transcribing_a_multi_sentence_stream(lang, chunk_ms, mode):
    """The shipped weights go on after every sentence end: at most two of the six sentences lost (run24,
    which stopped after the first, lost five in every case). How many words they get wrong on the way is
    the goal test's (above) and the model card's long-form figure."""
    refs, hyp = six_sentences(lang, chunk_ms, mode)
    lost = longform.sentence_losses(refs, hyp)
    assert sum(lost) <= 2, f"lost {[r for r, x in zip(refs, lost) if x]}; hypothesis: {hyp!r}"


def _long_stream(lang: str, chunk_ms: int, seconds: float, seed: int) -> tuple[np.ndarray, list[str]]:
    """Held-out sentences the model gets right alone, repeated in shuffled order, 0-1 s pauses, until
    ``seconds`` of audio."""
    good = list(right_alone(lang, chunk_ms))
    assert len(good) >= 5
    clips, rng, idx, total = heldout(lang), random.Random(seed), [], 0.0
    while total < seconds:
        order = good[:]
        rng.shuffle(order)
        for i in order:
            idx.append(i)
            total += len(clips[i][0]) / 16000 + 0.5
    return stream_of(lang, idx, seed)


async def _realtime_items(url: str, audio: np.ndarray, lang: str, chunk_ms: int) -> list[str]:
    """The transcripts of every item of an OpenAI Realtime transcription session (server_vad turn
    detection: the server's endpoints end items; the last one is committed)."""
    import base64
    import json

    from websockets.asyncio.client import connect

    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    items = []
    async with connect(f"{url}/v1/realtime?intent=transcription", max_size=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "transcription_session.update", "session": {
            "input_audio_format": {"type": "audio/pcm", "rate": 16000}, "chunk_ms": chunk_ms,
            "input_audio_transcription": {"model": "onepass", "language": lang}}}))
        for i in range(0, len(pcm), 32000):
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm[i:i + 32000]).decode()}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while True:
            try:
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            except asyncio.TimeoutError:
                break
            assert m["type"] != "error", m
            if m["type"] == "conversation.item.input_audio_transcription.completed":
                items.append(m["transcript"])
    return items


@lru_cache(maxsize=None)
def two_minutes_through(protocol: str) -> tuple[list[str], str, int]:
    """A two-minute multi-sentence stream through /v1/listen or /v1/realtime (the server's default
    endpointing): (references, the finals' normalised text, utterances ended by endpoints)."""
    from onepass.server import ServerConfig, create_app
    from onepass.server.testing import serve_in_thread
    from tests.test_server_deepgram import dg_session, finals_text, pcm16

    lang, chunk_ms = "en-US", 560
    audio, refs = _long_stream(lang, chunk_ms, 120.0, seed=7)
    assert len(audio) >= 120 * 16000
    with serve_in_thread(create_app(_asr(), ServerConfig(max_streams=2))) as http:
        url = http.replace("http", "ws")
        if protocol == "deepgram":
            msgs, code = asyncio.run(dg_session(url, pcm16(audio), f"language={lang}&chunk_ms={chunk_ms}",
                                                piece=32000))
            assert code == 1000
            utterances = sum(1 for m in msgs if m["type"] == "Results" and m["speech_final"])
            hyp = finals_text(msgs)
        else:
            items = asyncio.run(_realtime_items(url, audio, lang, chunk_ms))
            utterances, hyp = len(items), " ".join(items)
    return refs, _normalize(hyp), utterances


@pytest.mark.parametrize("protocol", ["deepgram", "realtime"])
def test_two_minute_stream_through_the_servers_keeps_every_sentence(protocol):
    """The issue's goal through the servers: every sentence is in the finals."""
    refs, hyp, _ = two_minutes_through(protocol)
    lost = longform.sentence_losses(refs, hyp)
    assert not any(lost), f"lost {sum(lost)} of {len(refs)}: {[r for r, x in zip(refs, lost) if x]}"


@pytest.mark.parametrize("protocol", ["deepgram", "realtime"])
def test_two_minute_stream_through_the_servers_keeps_going(protocol):
    """A two-minute multi-sentence stream through /v1/listen and /v1/realtime: results for the whole two
    minutes (at most one sentence in 20 lost, the last one heard), as several utterances (the pauses longer
    than the 800 ms endpoint end one: about one in five)."""
    refs, hyp, utterances = two_minutes_through(protocol)
    lost = longform.sentence_losses(refs, hyp)
    assert sum(lost) <= len(refs) // 20 and not lost[-1], [r for r, x in zip(refs, lost) if x]
    assert utterances >= 5, (utterances, len(refs))


def test_sentence_losses_and_errors():
    refs = ["a b c", "d e f", "g h"]
    assert longform.sentence_losses(refs, "a b c") == [False, True, True]
    assert longform.sentence_errors(refs, "x a b c d e g h y") == [(1, 0, 3), (1, 1, 3), (1, 0, 2)]
    assert longform.sentence_losses(refs, "a b c d e f g h") == [False, False, False]


def test_errors_by_a_words_place_in_its_sentence():
    from tools.demo_model.evaluate_longform import position_errors

    refs = [["a b c", "d e f g"]]
    got = position_errors(refs, ["a b c x e f g h"], ["a b c", "d e f q"])
    assert got == {"first": [0.5, 0.0], "second": [0.0, 0.0], "middle": [0.0, 0.0], "last": [0.5, 0.5]}


def test_lost_sentences_counted_among_those_right_alone():
    from tools.demo_model.evaluate_longform import lost_of_right_alone

    refs = [["a b c", "d e f"], ["g h", "i j"]]
    lost = [[False, True], [True, True]]
    # right alone: "a b c", "g h" (the others have an error alone); lost and right alone: "g h" only
    assert lost_of_right_alone(refs, lost, ["a b c", "d e", "g h", "i x"]) == (2, 1)
    with pytest.raises(ValueError):  # one transcript per sentence, in order
        lost_of_right_alone(refs, lost, ["a b c"])


def test_long_form_examples_keep_every_sentence():
    """The training examples (longform.build_example): clips in order with pauses between them, the targets
    joined; a late join drops whole words from the first clip only."""
    rate = longform.RATE
    clips = [(np.full(rate, 0.5 * (k + 1), np.float32), t, [[0.1, 0.3], [0.5, 0.7], [0.8, 0.9]])
             for k, t in enumerate(["One two three.", "Four five six?", "Seven eight nine!"])]
    cfg = longform.LongFormConfig(late_join_prob=0.0)
    audio, text = longform.build_example(clips, random.Random(0), cfg)
    assert text == "One two three. Four five six? Seven eight nine!"
    assert len(audio) >= 3 * rate
    for k in range(3):  # every clip's samples are in there, in order
        assert np.flatnonzero(np.isclose(audio, 0.5 * (k + 1))).size == rate
    cfg = longform.LongFormConfig(late_join_prob=1.0)
    for seed in range(20):
        audio, text = longform.build_example(clips[:1], random.Random(seed), cfg)
        assert text in ("two three.", "three."), text
        kept = np.flatnonzero(np.isclose(audio, 0.5)).size
        assert (text == "three.") == (kept <= 0.5 * rate)


def test_long_leads_are_drawn_only_when_asked_and_in_their_range():
    """longform.lead_seconds: without long_lead_prob the old draws (0 ... lead_max) and the same random
    stream (configs of earlier stages replay); with it, that share of leads in lead_max ... long_lead_max."""
    old, new = random.Random(3), random.Random(3)
    plain = [longform.lead_seconds(old, longform.LongFormConfig()) for _ in range(200)]
    assert plain == [new.uniform(0.0, 1.0) for _ in range(200)]
    cfg = longform.LongFormConfig(long_lead_prob=0.25, long_lead_max=8.0)
    rng = random.Random(4)
    leads = [longform.lead_seconds(rng, cfg) for _ in range(2000)]
    long = [x for x in leads if x > cfg.lead_max]
    assert 0.21 < len(long) / len(leads) < 0.29 and max(leads) <= 8.0 and min(leads) >= 0.0
    assert max(long) > 7.5  # past the attention left context's 4.5 s of silence


@pytest.mark.slow  # run31 passed both; avg32 and avg34 lose one of the 138 sentences at 1120 ms (`person risk bit
# foot not fight me opportunity`), avg35 the same one at 80 ms, though over 150 streams of such sentences they
# lose at most a few of 900
@pytest.mark.parametrize("chunk_ms,mode", [(1120, "offline"), pytest.param(80, "stream", marks=GOAL_NOT_MET)])
def test_demo_five_minute_stream_does_not_degrade(chunk_ms, mode):
    """A 5-minute English stream of held-out sentences the model gets right alone (repeated, in shuffled
    order, 0-1 s pauses): its last minute's WER is within 0.05 of its first minute's, and no sentence is
    lost anywhere in it."""
    lang = "en-US"
    good = list(right_alone(lang, chunk_ms, 60))
    assert len(good) >= 10
    clips = heldout(lang, 60)
    rng = random.Random(5)
    idx, seconds = [], 0.0
    while seconds < 300.0:
        order = good[:]
        rng.shuffle(order)
        for i in order:
            idx.append(i)
            seconds += len(clips[i][0]) / 16000 + 0.5
    pauses = [0.0] + [rng.uniform(0.0, 1.0) for _ in idx[1:]]
    audio = longform.join_audio([clips[i][0] for i in idx], pauses)
    starts = np.cumsum([p + len(clips[i][0]) / 16000 for p, i in zip(pauses, idx)]) - [len(clips[i][0]) / 16000 for i in idx]
    refs = [_normalize(clips[i][1]) for i in idx]
    hyp = _normalize(transcribe(audio, lang, chunk_ms, mode))
    errs = longform.sentence_errors(refs, hyp)
    total = len(audio) / 16000
    assert total >= 300.0

    def minute_wer(sel) -> float:
        e = [x for x, s in zip(errs, starts) if sel(s)]
        return sum(a for a, _, _ in e) / sum(n for _, _, n in e)

    first, last = minute_wer(lambda s: s < 60.0), minute_wer(lambda s: s >= total - 60.0)
    lost = [r for r, (_, d, n) in zip(refs, errs) if 2 * d > n]
    assert not lost, (len(lost), len(refs), hyp[-300:])
    assert last <= first + 0.05, (first, last)
