"""Audio in: files, arrays and raw PCM bytes -> 16 kHz mono float32 for the model."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import OnePassError

SAMPLE_RATE = 16000  # Hz, the model's input rate
MIN_SAMPLE_RATE = 8000  # Hz, telephony; lower "rates" are corrupt headers, and would upsample 16000x
MAX_SAMPLE_RATE = 384000  # Hz, the highest rate any common audio interface records at
MAX_CHANNELS = 64  # more "channels" than this almost always means a (channels, n) array
# soxr "HQ" is 20-bit precision (~120 dB stop band): already beyond 16-bit sources and the
# model's noise floor, while "VHQ" (28-bit) costs more CPU for no audible or WER difference.
RESAMPLE_QUALITY = "HQ"
PCM_ENCODINGS = {"linear16": np.dtype("<i2"), "float32": np.dtype("<f4")}  # little endian
# libsndfile >= 1.1 reads mp3; older builds do not, so say what this one can.
SOUNDFILE_FORMATS = "wav, flac, ogg/vorbis/opus, aiff" + (", mp3" if "MP3" in sf.available_formats() else "")

AudioInput = str | os.PathLike | np.ndarray


def load_audio(path: str | os.PathLike, max_s: float | None = None) -> tuple[np.ndarray, int]:
    """Read a file as float32 mono (channels averaged). Returns (samples, sample_rate).

    ``max_s``: refuse files longer than this many seconds before decoding them (a few KB of
    compressed silence, or a corrupt header, can declare hours of audio).

    soundfile (libsndfile) is tried first and keeps the file's native rate. Other formats
    (m4a, aac, webm, video files...) are decoded by ``ffmpeg`` when it is on PATH; ffmpeg then
    resamples to SAMPLE_RATE and downmixes itself (one process, no ffprobe needed; its stereo
    downmix is the channel average) and SAMPLE_RATE is returned.
    """
    path = Path(path)
    if not path.exists():
        raise OnePassError(f"audio file not found: {path}; check the path")
    if not path.is_file():
        raise OnePassError(f"not an audio file: {path} is a directory or special file")
    try:
        with sf.SoundFile(path) as f:
            rate = check_rate(f.samplerate, f"the sample rate of {path}")
            _check_length(path, f.frames / rate, max_s)
            data = f.read(dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        data, rate = _read_with_ffmpeg(path, reason=str(exc), max_s=max_s)
    samples = to_mono_float32(data)
    if samples.size == 0:
        raise OnePassError(f"{path} contains no audio samples; record or export it again")
    return samples, int(rate)


def _check_length(path: Path, seconds: float, max_s: float | None) -> None:
    if max_s is not None and seconds > max_s:
        raise OnePassError(f"{path} is {seconds:.0f} s long, more than the limit of {max_s:g} s; split it")


def _read_with_ffmpeg(path: Path, reason: str, max_s: float | None = None) -> tuple[np.ndarray, int]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise OnePassError(
            f"cannot read {path} ({reason}). Supported without extra tools: {SOUNDFILE_FORMATS}; "
            "install ffmpeg to read more formats (m4a, aac, webm, video files), or convert the file to wav")
    limit = [] if max_s is None else ["-t", f"{max_s + 1:g}"]  # decode no more than the limit (and a bit)
    cmd = [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(path), "-vn", *limit,
           "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise OnePassError(f"cannot read {path}: neither soundfile nor ffmpeg could decode it "
                           f"({detail[-1] if detail else f'ffmpeg exit code {proc.returncode}'}); "
                           "check that the file is a complete audio file")
    usable = len(proc.stdout) - len(proc.stdout) % 4  # whole float32 samples only, whatever came
    _check_length(path, usable / 4 / SAMPLE_RATE, max_s)
    return np.frombuffer(proc.stdout[:usable], dtype="<f4").astype(np.float32), SAMPLE_RATE


def to_mono_float32(samples: np.ndarray) -> np.ndarray:
    """1-D or (n, channels) int16/int32/float32/float64 -> 1-D float32; ints scaled to [-1, 1)."""
    x = np.asarray(samples)
    if x.ndim == 0 or x.ndim > 2:
        raise OnePassError(f"audio must be 1-D or (samples, channels); got shape {x.shape}")
    if x.ndim == 2 and x.shape[1] > MAX_CHANNELS:
        raise OnePassError(f"audio has shape {x.shape}: expected (samples, channels) with at most "
                           f"{MAX_CHANNELS} channels; transpose channel-first arrays")
    if x.dtype.byteorder not in "=|":
        x = x.astype(x.dtype.newbyteorder("="))
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    elif x.dtype == np.int32:
        x = (x / 2147483648.0).astype(np.float32)  # via float64: float32 cannot hold int32 exactly
    elif x.dtype in (np.float32, np.float64):
        if not np.isfinite(x).all():
            raise OnePassError("audio contains NaN or infinite samples; check the source")
        x = x.astype(np.float32, copy=False)
    else:
        raise OnePassError(f"unsupported sample type {x.dtype}; use int16, int32, float32 or float64")
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    return np.ascontiguousarray(x)


def check_rate(rate: int, what: str = "sample rate") -> int:
    """A rate in Hz as int; OnePassError unless it is a whole number in MIN_SAMPLE_RATE..MAX_SAMPLE_RATE."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, np.integer)):
        raise OnePassError(f"{what} must be a whole number of Hz, got {rate!r}")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise OnePassError(f"{what} must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {rate}")
    return int(rate)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at ``target`` Hz (soxr, RESAMPLE_QUALITY); a no-op when the rates match."""
    rate, target = check_rate(rate), check_rate(target, "target rate")
    x = to_mono_float32(samples)
    if rate == target or x.size == 0:
        return x
    return soxr.resample(x, rate, target, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)


class StreamResampler:
    """Push-style resampler for streaming: chunks in, chunks out, filter state kept between
    calls so the concatenated output matches a one-shot ``resample`` up to edge effects."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE):
        self.in_rate = check_rate(in_rate)
        self.out_rate = check_rate(out_rate, "target rate")
        self._stream = None
        if self.in_rate != self.out_rate:
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32",
                                               quality=RESAMPLE_QUALITY)

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample one chunk; ``last=True`` flushes the filter tail and resets for reuse."""
        x = to_mono_float32(samples)
        if self._stream is None:
            return x
        out = self._stream.resample_chunk(x, last=last)
        if last:
            self._stream.clear()
        return np.ascontiguousarray(out, dtype=np.float32)


def decode_pcm(data: bytes, encoding: str = "linear16", channels: int = 1) -> np.ndarray:
    """Raw little-endian PCM bytes (interleaved when ``channels`` > 1) -> 1-D float32."""
    dtype = PCM_ENCODINGS.get(encoding)
    if dtype is None:
        raise OnePassError(f"unknown PCM encoding {encoding!r}; use one of {', '.join(PCM_ENCODINGS)}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise OnePassError(f"channels must be between 1 and {MAX_CHANNELS}, got {channels}")
    frame = dtype.itemsize * channels
    if len(data) % frame:
        raise OnePassError(f"got {len(data)} bytes of {encoding} audio, not a multiple of {frame} "
                           f"({dtype.itemsize}-byte samples x {channels} channel(s)); send whole samples")
    return to_mono_float32(np.frombuffer(data, dtype=dtype).reshape(-1, channels))


def load_for_model(audio: AudioInput, sample_rate: int | None = None) -> tuple[np.ndarray, float]:
    """A file path or an array (which needs ``sample_rate``) -> (16 kHz mono float32, duration in s)."""
    if isinstance(audio, (str, os.PathLike)):
        if sample_rate is not None:
            raise OnePassError("sample_rate is for arrays only; a file's rate is read from the file")
        samples, rate = load_audio(audio)
    else:
        if sample_rate is None:
            raise OnePassError("an audio array needs its sample_rate (e.g. sample_rate=16000)")
        samples, rate = to_mono_float32(audio), check_rate(sample_rate)
    out = resample(samples, rate, SAMPLE_RATE)
    return out, len(out) / SAMPLE_RATE
