"""Engine settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    max_batch: int = 32  # streams per batched step (per chunk size)
    max_streams: int = 256  # open streams; open() beyond this is refused
    endpoint_blank_ms: int | None = 800  # default: end an utterance after this much audio without tokens
    # (None: never); open(endpoint_ms=...) sets it per stream
    word_hold_ms: int | None = 1500  # an endpoint after a piece that may not end its word ("hers" of
    # "herself") waits for the next piece (a new word: the utterance ends before it; the same word: it goes
    # on) or the end of the stream, at most this much more audio without tokens (None: no limit), so that
    # a final does not end inside a word and a turn still ends when nothing more is said
    slot_growth: int = 8  # slots added to a pool when it is full
