"""What the engine reports about a stream."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..results import Transcript, Word


@dataclass(frozen=True)
class StreamEvent:
    stream_id: int
    seq: int  # per-stream sequence number, from 0
    # "partial": new text (final for good); "utterance_end": the utterance is over (endpoint,
    # finalize, end of a segment or of the input); "silence": silence_ms without tokens after
    # speech (start_s: end of the last token's frame); "flushed": everything received before a
    # finalize(flush=True) is decoded, later audio is a new segment; "closed": the stream ended
    kind: str
    utterance_id: int  # utterances of a stream are numbered from 0
    text: str  # the utterance so far ("partial"), the whole utterance ("utterance_end"), all ("closed")
    delta: str = ""  # text added since the previous event of this utterance
    new_token_ids: list[int] = field(default_factory=list)
    new_words: list[Word] = field(default_factory=list)  # words completed since the last event
    start_s: float = 0.0  # utterance start (first token), seconds of stream audio
    end_s: float = 0.0  # end of the last decoded frame, seconds
    language: str | None = None
    language_detected: bool = False
    lag_s: float = 0.0  # audio received but not yet decoded, seconds
    latency_s: float = 0.0  # wall time from the chunk's audio being complete to this result
    transcript: Transcript | None = None  # the whole stream, on "closed"
    reason: str = ""  # why an utterance ended: "endpoint" (no tokens for endpoint_ms), "finalize", "end" (input)
