"""Our streaming == our offline: every chunk size, partial final chunk, short audio,
leading silence, any push size and sample rate; batched == one by one."""

from __future__ import annotations

import numpy as np
import pytest

from onepass import OnePassError
from onepass.audio import resample
from tests.conftest import RIGHT_CONTEXTS, stream_in_pieces


@pytest.mark.parametrize("r", RIGHT_CONTEXTS)
def test_streaming_equals_offline(asr, clips, r):
    for name, audio in clips.items():
        offline = asr.transcribe_batch([audio], language="fr-FR", chunk_ms=(r + 1) * 80)[0]
        # small pieces at the large chunks (many calls per chunk), large pieces at the small ones
        for seed, piece in (((1, 300),) if r >= 3 else ((2, 20000),)):
            streamed, updates = stream_in_pieces(asr, audio, "fr-FR", (r + 1) * 80, seed=seed, max_piece=piece)
            assert streamed.token_ids == offline.token_ids, (name, r, piece)
            assert streamed.text == offline.text
            # partial results only grow, and together they are the final text
            assert "".join(u.delta for u in updates) == streamed.text
            assert sum(len(u.new_token_ids) for u in updates) == len(streamed.token_ids)
            assert [w.word for u in updates for w in u.new_words] == [w.word for w in streamed.words]


def test_partials_arrive_before_the_end(asr, clips):
    audio = clips["long"]
    session = asr.stream(language="en-US", chunk_ms=160)
    decoded = []
    for pos in range(0, len(audio), 2560):
        decoded.append(session.accept(audio[pos:pos + 2560]).decoded_s)
    final = session.finish()
    assert decoded[-1] > 0.5 * len(audio) / 16000  # the encoder keeps up chunk by chunk
    assert decoded == sorted(decoded)
    assert final.duration_s == pytest.approx(len(audio) / 16000)


def test_audio_shorter_than_one_chunk_and_tiny_inputs(asr):
    rng = np.random.default_rng(3)
    for n in (1, 159, 160, 161, 1000, 8000):
        audio = (0.1 * rng.standard_normal(n)).astype(np.float32)
        offline = asr.transcribe_batch([audio], language="en", chunk_ms=1120)[0]
        streamed, _ = stream_in_pieces(asr, audio, "en", 1120, max_piece=97)
        assert streamed.token_ids == offline.token_ids, n


def test_other_sample_rates_stream_like_offline(asr, clips):
    audio16 = clips["normal"]
    audio44 = resample(audio16, 16000, 44100)
    offline = asr.transcribe(audio44, 44100, language="de-DE", chunk_ms=320)
    streamed, _ = stream_in_pieces(asr, audio44, "de-DE", 320, sample_rate=44100, max_piece=7000)
    assert streamed.token_ids == offline.token_ids


def test_stereo_int16_input(asr, clips):
    audio = clips["short"]
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    stereo = np.stack([pcm, pcm], axis=1)
    a = asr.transcribe(stereo, 16000, language="en-US", chunk_ms=560)
    b = asr.transcribe(pcm.astype(np.float32) / 32768, 16000, language="en-US", chunk_ms=560)
    assert a.token_ids == b.token_ids


def test_batched_equals_one_by_one(asr, clips):
    audios = list(clips.values())
    languages = ["en-US", "de-DE", "auto", "es", "fr-FR"][:len(audios)]
    for chunk_ms in (80, 560):
        batched = asr.transcribe_batch(audios, language=languages, chunk_ms=chunk_ms)
        for audio, lang, got in zip(audios, languages, batched):
            one = asr.transcribe_batch([audio], language=lang, chunk_ms=chunk_ms)[0]
            assert got.token_ids == one.token_ids


def test_words_and_times_are_consistent(asr, clips):
    result = asr.transcribe(clips["long"], 16000, language="en-US", chunk_ms=560)
    assert result.words
    assert " ".join(w.word for w in result.words) == result.text
    for w in result.words:
        assert 0 <= w.start_s < w.end_s <= result.duration_s + 0.08
        assert 0 < w.confidence <= 1
    assert [w.start_s for w in result.words] == sorted(w.start_s for w in result.words)
    assert len(result.token_times_s) == len(result.token_ids)


def test_finished_stream_refuses_more_audio(asr):
    session = asr.stream(language="en")
    session.accept(np.zeros(1600, np.float32))
    session.finish()
    with pytest.raises(OnePassError):
        session.accept(np.zeros(10, np.float32))
    with pytest.raises(OnePassError):
        session.finish()


def test_sample_rate_cannot_change_mid_stream(asr):
    session = asr.stream(language="en")
    session.accept(np.zeros(1600, np.float32), 16000)
    with pytest.raises(OnePassError, match="sample rate"):
        session.accept(np.zeros(1600, np.float32), 8000)


@pytest.mark.parametrize("chunk_ms", [80, 560])
def test_flush_decodes_the_segment_and_the_stream_goes_on(asr, clips, chunk_ms):
    audio = clips["long"]
    cut = len(audio) // 2 + 123  # not on a chunk boundary: the flush encodes a partial chunk
    first = asr.transcribe(audio[:cut], 16000, language="de-DE", chunk_ms=chunk_ms)
    second = asr.transcribe(audio[cut:], 16000, language="de-DE", chunk_ms=chunk_ms)
    session = asr.stream(language="de-DE", chunk_ms=chunk_ms)
    assert session.flush().text == ""  # no audio yet
    updates = [session.accept(audio[p:min(p + 3000, cut)]) for p in range(0, cut, 3000)]
    flushed = session.flush()
    updates.append(flushed)
    assert not flushed.final and flushed.decoded_s == pytest.approx(cut / 16000, abs=0.08)
    got = [t for u in updates for t in u.new_token_ids]
    assert got == first.token_ids  # the segment as its own offline pass
    assert [w.word for u in updates for w in u.new_words] == [w.word for w in first.words]  # all final
    assert session.flush().new_token_ids == []  # nothing new since: nothing to decode
    updates.append(session.accept(audio[cut:]))
    final = session.finish()
    assert final.token_ids == first.token_ids + second.token_ids  # fresh model state after the flush
    assert final.duration_s == pytest.approx(len(audio) / 16000)
    later = final.token_times_s[len(first.token_ids):]
    assert later and min(later) >= cut / 16000 - 0.08  # the second segment's times run on from the cut
