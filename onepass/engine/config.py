"""Engine settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    max_batch: int = 32  # streams per batched step (per chunk size)
    max_streams: int = 256  # open streams; open() beyond this is refused
    endpoint_blank_ms: int | None = 800  # default: end an utterance after this much audio without tokens
    # (None: never); open(endpoint_ms=...) sets it per stream
    slot_growth: int = 8  # slots added to a pool when it is full
