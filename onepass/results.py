"""Typed results: words, whole transcripts, and streaming updates."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Word:
    word: str  # the word as written, with attached punctuation
    start_s: float  # start time in seconds (first emitting encoder frame)
    end_s: float  # end time in seconds (end of the last emitting encoder frame)
    confidence: float  # mean softmax probability of its tokens, 0..1


@dataclass(frozen=True)
class Transcript:
    text: str  # clean transcript, language tags removed
    language: str | None  # language code used, or detected in auto mode (None: auto, no tag seen)
    language_detected: bool  # True when the model chose the language (auto mode)
    words: list[Word]
    token_ids: list[int]  # exact RNN-T output ids (language tags included)
    token_times_s: list[float]  # start time of the frame that emitted each token
    duration_s: float  # audio duration in seconds

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration"] = d.pop("duration_s")
        d["words"] = [{"word": w.word, "start": w.start_s, "end": w.end_s, "confidence": w.confidence}
                      for w in self.words]
        return d


@dataclass(frozen=True)
class StreamUpdate:
    """What one ``accept``/``finish`` call produced. Emitted text never changes later."""

    text: str  # transcript so far
    delta: str  # text added by this call (may start with a space)
    new_token_ids: list[int] = field(default_factory=list)
    new_words: list[Word] = field(default_factory=list)  # words completed since the last update
    language: str | None = None
    language_detected: bool = False
    audio_s: float = 0.0  # audio accepted so far, seconds
    decoded_s: float = 0.0  # audio whose encoder frames are decoded, seconds
    final: bool = False  # True for the update returned by finish()
