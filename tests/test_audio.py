"""Audio loading, downmix, resampling and raw PCM decoding (no model needed)."""

from __future__ import annotations

import os
import stat
import sys

import numpy as np
import pytest
import soundfile as sf

from onepass.audio import (SAMPLE_RATE, StreamResampler, decode_pcm, load_audio, load_for_model,
                           resample, to_mono_float32)
from onepass.errors import OnePassError

RATE = 44100  # Hz, a common native rate that is not a multiple of 16 kHz
TONE_HZ = 1000
WRITE_SUBTYPES = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}
LOSSLESS = ("wav", "flac")


def stereo_tone(seconds: float = 1.0) -> np.ndarray:
    """int16 (n, 2): a 1 kHz sine on the left, a quieter copy on the right."""
    t = np.arange(int(RATE * seconds)) / RATE
    left = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    return (np.stack([left, 0.25 * left], axis=1) * 32767).astype(np.int16)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


@pytest.fixture(params=list(WRITE_SUBTYPES))
def tone_file(request, tmp_path):
    ext = request.param
    path = tmp_path / f"tone.{ext}"
    sf.write(path, stereo_tone(), RATE, subtype=WRITE_SUBTYPES[ext])
    return path


def test_load_downmixes_at_native_rate(tone_file):
    samples, rate = load_audio(tone_file)
    assert rate == RATE and samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) == RATE
    if tone_file.suffix[1:] in LOSSLESS:
        expected = stereo_tone().astype(np.float64).mean(axis=1) / 32768
        np.testing.assert_allclose(samples, expected, atol=1e-6)
    assert abs(peak_hz(samples, rate) - TONE_HZ) <= 1


def test_load_for_model_resamples_and_keeps_frequency(tone_file):
    samples, duration_s = load_for_model(tone_file)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) == SAMPLE_RATE and duration_s == pytest.approx(1.0)
    assert abs(peak_hz(samples, SAMPLE_RATE) - TONE_HZ) <= 1  # 1 Hz FFT bins
    assert 0.3 < np.abs(samples).max() < 0.45  # (0.5 + 0.125) / 2 = 0.3125 peak, no gain change


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile < 1.1 cannot write mp3")
def test_mp3_loads_through_soundfile(tmp_path):
    path = tmp_path / "tone.mp3"
    sf.write(path, stereo_tone(), RATE, format="MP3", subtype="MPEG_LAYER_III")
    samples, rate = load_audio(path)
    assert rate == RATE and abs(len(samples) - RATE) < 2048  # mp3 frames may pad the end
    assert abs(peak_hz(samples, rate) - TONE_HZ) <= 1


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 2), np.int16), RATE, subtype="PCM_16")
    with pytest.raises(OnePassError, match="no audio samples"):
        load_audio(path)


def test_corrupt_file_names_file_and_formats(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg to fall back on
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(OnePassError, match="noise.wav") as err:
        load_audio(path)
    assert "flac" in str(err.value) and "ffmpeg" in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(OnePassError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(OnePassError, match="directory"):
        load_audio(tmp_path)


def test_non_finite_samples(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1], np.float32), RATE, subtype="FLOAT")
    with pytest.raises(OnePassError, match="NaN"):
        load_audio(path)


def fake_ffmpeg(folder, body: str) -> None:
    """An executable named ffmpeg that runs ``body`` with the real Python."""
    exe = folder / "ffmpeg"
    exe.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(os.name != "posix", reason="fake ffmpeg is a shebang script")
def test_ffmpeg_fallback_decodes_pipe(tmp_path, monkeypatch):
    samples = np.linspace(-0.5, 0.5, 800, dtype="<f4")
    fake_ffmpeg(tmp_path, f"assert '-nostdin' in sys.argv and sys.argv[-1] == '-'\n"
                          f"sys.stdout.buffer.write(bytes.fromhex('{samples.tobytes().hex()}'))")
    monkeypatch.setenv("PATH", str(tmp_path))
    path = tmp_path / "clip.m4a"
    path.write_bytes(b"not a format libsndfile knows")
    out, rate = load_audio(path)
    assert rate == SAMPLE_RATE
    np.testing.assert_array_equal(out, samples)


@pytest.mark.skipif(os.name != "posix", reason="fake ffmpeg is a shebang script")
def test_ffmpeg_failure_is_user_error(tmp_path, monkeypatch):
    fake_ffmpeg(tmp_path, "sys.stderr.write('clip.m4a: Invalid data found\\n'); sys.exit(1)")
    monkeypatch.setenv("PATH", str(tmp_path))
    path = tmp_path / "clip.m4a"
    path.write_bytes(b"junk")
    with pytest.raises(OnePassError, match="Invalid data found"):
        load_audio(path)


def test_to_mono_float32_scales_int_pcm():
    np.testing.assert_array_equal(to_mono_float32(np.array([-32768, 0, 16384], np.int16)), [-1.0, 0.0, 0.5])
    np.testing.assert_array_equal(to_mono_float32(np.array([-2**31, 2**30], np.int32)), [-1.0, 0.5])
    assert to_mono_float32(np.array([32767], np.int16))[0] < 1.0
    stereo = np.array([[0.2, 0.4], [-1.0, 1.0]], np.float64)
    out = to_mono_float32(stereo)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.3, 0.0], atol=1e-7)
    assert to_mono_float32(np.array([1, -2], ">i2")).tolist() == [1 / 32768, -2 / 32768]


@pytest.mark.parametrize("bad", [np.zeros((2, 16000), np.float32), np.zeros((2, 2, 2), np.float32),
                                 np.zeros(4, np.uint8), np.array(0.5)])
def test_to_mono_float32_rejects(bad):
    with pytest.raises(OnePassError):
        to_mono_float32(bad)


def test_resample_lengths_and_noop():
    x = np.random.default_rng(1).standard_normal(RATE).astype(np.float32) * 0.1
    assert len(resample(x, RATE)) == SAMPLE_RATE
    assert len(resample(x, RATE, 8000)) == 8000
    assert resample(x, SAMPLE_RATE, SAMPLE_RATE) is x  # matching rates: no copy, no filtering


@pytest.mark.parametrize("rate", [0, -16000, 400000, 44100.0, True, "16000"])
def test_resample_rejects_bad_rates(rate):
    with pytest.raises(OnePassError, match="Hz"):
        resample(np.zeros(10, np.float32), rate)


def test_decode_pcm():
    ints = np.array([-32768, 0, 16384, 32767], "<i2")
    np.testing.assert_array_equal(decode_pcm(ints.tobytes(), "linear16"), ints / 32768)
    floats = np.array([0.25, -0.5, 1.0], "<f4")
    np.testing.assert_array_equal(decode_pcm(floats.tobytes(), "float32"), floats)
    stereo = np.array([[1000, 3000], [-2000, 0]], "<i2")
    np.testing.assert_allclose(decode_pcm(stereo.tobytes(), "linear16", channels=2), [2000 / 32768, -1000 / 32768])
    assert decode_pcm(b"", "linear16").shape == (0,)


@pytest.mark.parametrize("data, encoding", [(b"\x00" * 3, "linear16"), (b"\x00" * 6, "float32"),
                                            (b"\x00\x00", "mulaw")])
def test_decode_pcm_rejects(data, encoding):
    with pytest.raises(OnePassError):
        decode_pcm(data, encoding)


@pytest.mark.parametrize("rate", [RATE, 48000, 8000])
def test_stream_resampler_matches_one_shot(rate):
    x = np.random.default_rng(2).standard_normal(rate * 2).astype(np.float32) * 0.1
    sizes = [1, 7, 160, 4410, 333, 1024]  # irregular, including tiny and odd-sized chunks
    stream, out, i, k = StreamResampler(rate), [], 0, 0
    while i < len(x):
        out.append(stream.process(x[i:i + sizes[k % len(sizes)]]))
        i, k = i + sizes[k % len(sizes)], k + 1
    out.append(stream.process(np.zeros(0, np.float32), last=True))
    streamed, one_shot = np.concatenate(out), resample(x, rate)
    # Tolerance: the same length and 1e-6 max abs difference (float32 rounding); soxr's stream
    # and one-shot paths share one filter state machine and are bit-identical in practice.
    assert len(streamed) == len(one_shot) == SAMPLE_RATE * 2
    np.testing.assert_allclose(streamed, one_shot, rtol=0, atol=1e-6)


def test_stream_resampler_passthrough_and_reuse():
    s = StreamResampler(SAMPLE_RATE)
    chunk = np.array([0.1, -0.2], np.float32)
    np.testing.assert_array_equal(s.process(chunk), chunk)
    r = StreamResampler(RATE)
    x = np.random.default_rng(3).standard_normal(RATE).astype(np.float32)
    first = r.process(x, last=True)
    np.testing.assert_array_equal(r.process(x, last=True), first)  # last=True resets the state


def test_load_for_model_arrays(tmp_path):
    samples, duration_s = load_for_model(stereo_tone(0.5), sample_rate=RATE)
    assert len(samples) == SAMPLE_RATE // 2 and duration_s == pytest.approx(0.5)
    with pytest.raises(OnePassError, match="sample_rate"):
        load_for_model(np.zeros(100, np.float32))
    assert load_for_model(np.zeros(0, np.float32), sample_rate=SAMPLE_RATE)[0].shape == (0,)  # empty transcript
    path = tmp_path / "a.wav"
    sf.write(path, stereo_tone(0.1), RATE)
    with pytest.raises(OnePassError, match="arrays only"):
        load_for_model(path, sample_rate=RATE)
    assert load_for_model(str(path))[0].shape == (SAMPLE_RATE // 10,)
