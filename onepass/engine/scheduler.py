"""Who runs in the next step: streams with a complete chunk (or a finished input), oldest first."""

from __future__ import annotations

from .stream import EngineStream


def chunk_frames(first: bool, right_context: int, factor: int) -> int:
    """Mel frames of a chunk: a stream's first chunk is shorter by factor-1 frames."""
    return 1 + factor * right_context if first else factor * (right_context + 1)


def chunks_ready(s: EngineStream, factor: int) -> int:
    have = len(s.pending)
    if s.started:
        return have // chunk_frames(False, s.right_context, factor)
    first = chunk_frames(True, s.right_context, factor)
    return 0 if have < first else 1 + (have - first) // chunk_frames(False, s.right_context, factor)


def schedule(streams: list[EngineStream], factor: int, max_batch: int) -> list[EngineStream]:
    """Up to max_batch streams of one chunk size, the longest-waiting first."""
    ready = [s for s in streams if not s.closed and (chunks_ready(s, factor) > 0 or s.input_done)]
    ready.sort(key=lambda s: s.ready_at[0] if s.ready_at else float("inf"))
    return ready[:max_batch]
