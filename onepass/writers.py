"""Output formats for transcripts: txt, json, OpenAI verbose_json, srt and vtt captions."""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import OnePassError
from .results import Transcript, Word

FORMATS = ("txt", "json", "srt", "vtt", "verbose_json")
EXTENSIONS = {"txt": ".txt", "json": ".json", "srt": ".srt", "vtt": ".vtt", "verbose_json": ".json"}
MAX_CUE_CHARS = 42  # one caption line; the usual broadcast limit for readability
MAX_CUE_S = 7.0  # longer cues stay on screen past the point viewers have read them
MAX_PAUSE_S = 1.5  # a silence this long starts a new cue so captions do not hang over it
SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
CLOSING = "\"')]}»”’」』"  # may follow sentence-ending punctuation: `He said "no."`


@dataclass(frozen=True)
class Cue:
    start_s: float  # start of the first word, seconds
    end_s: float  # end of the last word, seconds (> start_s)
    text: str  # the words joined by spaces
    words: tuple[Word, ...]  # empty when the transcript has no word timings


def format_transcript(t: Transcript, fmt: str, path_hint: str | None = None) -> str:
    """Render ``t`` as ``fmt`` (one of FORMATS); ``path_hint`` adds a ``file`` field to json."""
    if fmt == "txt":
        return t.text + "\n"
    if fmt == "json":
        d = t.to_dict()
        return _dumps({"file": path_hint, **d} if path_hint else d)
    if fmt == "verbose_json":
        return _dumps(verbose_json(t))
    if fmt == "srt":
        return "".join(f"{i}\n{timestamp(c.start_s, ',')} --> {timestamp(c.end_s, ',')}\n{c.text}\n\n"
                       for i, c in enumerate(make_cues(t), 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(
            f"{timestamp(c.start_s, '.')} --> {timestamp(c.end_s, '.')}\n{_vtt_escape(c.text)}\n\n"
            for c in make_cues(t))
    raise OnePassError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")


def output_path(audio_path: str | Path, fmt: str, output_dir: str | Path) -> Path:
    """Where the ``fmt`` output for ``audio_path`` goes: ``output_dir/<stem><ext>``."""
    if fmt not in EXTENSIONS:
        raise OnePassError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    return Path(output_dir) / (Path(audio_path).stem + EXTENSIONS[fmt])


def timestamp(seconds: float, decimal: str) -> str:
    """HH:MM:SS<decimal>mmm, e.g. ``00:01:02,500`` for srt (``,``) or vtt (``.``)."""
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def make_cues(t: Transcript) -> list[Cue]:
    """Group words into caption lines: break after sentence ends and long pauses, and before a
    line would pass MAX_CUE_CHARS or a cue MAX_CUE_S. Times are whole milliseconds, cues never
    overlap and each lasts at least 1 ms. No words but text: one cue spanning the audio."""
    if not t.words:
        if not t.text:
            return []
        return [Cue(0.0, max(_ms(t.duration_s), 0.001), t.text, ())]
    groups: list[list[Word]] = [[]]
    for w in t.words:
        line = groups[-1]
        if line and _breaks_before(line, w):
            line = []
            groups.append(line)
        line.append(w)
    cues: list[Cue] = []
    prev_end = 0.0
    for line in groups:
        # RNN-T words can share an encoder frame, so a word may start before the previous ends.
        start = max(_ms(line[0].start_s), prev_end)
        end = max(_ms(line[-1].end_s), start + 0.001)
        cues.append(Cue(start, end, " ".join(w.word for w in line), tuple(line)))
        prev_end = end
    return cues


def _breaks_before(line: list[Word], w: Word) -> bool:
    last = line[-1]
    chars = sum(len(x.word) + 1 for x in line) + len(w.word)
    return (last.word.rstrip(CLOSING).endswith(SENTENCE_END) or chars > MAX_CUE_CHARS
            or w.end_s - line[0].start_s > MAX_CUE_S or w.start_s - last.end_s >= MAX_PAUSE_S)


def verbose_json(t: Transcript) -> dict:
    """OpenAI ``verbose_json`` shape; segments are the caption cues of ``make_cues``."""
    cues = make_cues(t)
    # Split tokens at the unrounded first-word times: those are exactly the token times.
    starts = [c.words[0].start_s if c.words else c.start_s for c in cues[1:]] + [math.inf]
    segments = []
    for i, c in enumerate(cues):
        lo = starts[i - 1] if i else -math.inf  # leading tokens (a language tag) join segment 0
        tokens = [tok for tok, ts in zip(t.token_ids, t.token_times_s) if lo <= ts < starts[i]]
        segments.append({
            "id": i, "seek": 0, "start": c.start_s, "end": c.end_s, "text": c.text, "tokens": tokens,
            # OpenAI clients expect these; greedy RNN-T decoding has temperature 0, avg_logprob is
            # the mean log word confidence and there is no no-speech model, so it is always 0.
            "temperature": 0.0, "avg_logprob": _avg_logprob(c.words),
            "compression_ratio": _compression_ratio(c.text), "no_speech_prob": 0.0,
        })
    return {
        "task": "transcribe", "language": t.language, "duration": t.duration_s, "text": t.text,
        "words": [{"word": w.word, "start": w.start_s, "end": w.end_s} for w in t.words],
        "segments": segments,
    }


def _avg_logprob(words: tuple[Word, ...]) -> float:
    if not words:
        return 0.0
    return sum(math.log(max(w.confidence, 1e-10)) for w in words) / len(words)


def _compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000) / 1000


def _vtt_escape(text: str) -> str:
    # WebVTT cue text is markup: a bare < or & would start a tag or an entity.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _dumps(d: dict) -> str:
    return json.dumps(d, ensure_ascii=False) + "\n"  # one line: files and stdout (JSON Lines) alike
