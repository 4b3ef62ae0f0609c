"""Who runs in the next step: streams with a runnable step, the longest-waiting first.

A step is a whole chunk of mel frames, or the closing (possibly partial) chunk of a segment
that was flushed (``finalize(flush=True)``) or of a finished input.
"""

from __future__ import annotations

from .stream import EngineStream


def chunk_frames(first: bool, right_context: int, factor: int) -> int:
    """Mel frames of a chunk: a segment's first chunk is shorter by factor-1 frames."""
    return 1 + factor * right_context if first else factor * (right_context + 1)


def _full_chunks(frames: int, started: bool, r: int, factor: int) -> int:
    if started:
        return frames // chunk_frames(False, r, factor)
    first = chunk_frames(True, r, factor)
    return 0 if frames < first else 1 + (frames - first) // chunk_frames(False, r, factor)


def _closing_steps(frames: int, started: bool, r: int, factor: int) -> int:
    """Steps that encode ``frames`` to the end of a segment (the last one flagged final)."""
    need = chunk_frames(not started, r, factor)
    if frames <= need:
        return 1
    full = chunk_frames(False, r, factor)
    return 1 + -(-(frames - need) // full)


def steps_ready(s: EngineStream, factor: int) -> int:
    """Steps this stream could run back to back now."""
    if s.closed:
        return 0
    r, n, start, started = s.right_context, 0, 0, s.started
    for end in s.segment_ends:
        n += _closing_steps(end.frames - start, started, r, factor)
        start, started = end.frames, False
    rest = s.pending - start
    if s.input_done:
        return n + _closing_steps(rest, started, r, factor)
    return n + _full_chunks(rest, started, r, factor)


def schedule(ready: list[EngineStream], max_batch: int) -> list[EngineStream]:
    """Up to max_batch of ``ready`` (streams of one chunk size with a step to run: the engine's
    ready queue), the longest-waiting first."""
    return sorted(ready, key=lambda s: s.ready_at[0] if s.ready_at else float("inf"))[:max_batch]
