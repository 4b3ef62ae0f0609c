"""Host-side state of one engine stream: audio in, mel frames waiting (as the samples they are
computed from, in the step), tokens out."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..audio import StreamResampler
from ..decoding.greedy import Emissions
from ..decoding.text import IncrementalText
from ..languages import Language
from ..model.frontend import FrameAudio, SampleWindows


@dataclass
class SegmentEnd:
    """A flush point (``Engine.finalize(flush=True)``) not yet reached by the encoder."""

    frames: int  # of the ``pending`` frames, those that belong to the flushed segment
    samples: int  # model-rate samples received up to the flush (where the next segment starts)
    windows: SampleWindows  # the flushed segment's samples


@dataclass
class EngineStream:
    id: int
    right_context: int
    slot: int
    language: Language
    resampler: StreamResampler
    windows: SampleWindows  # the current segment's samples
    text: IncrementalText  # the current utterance
    endpoint_ms: int | None = None  # no tokens for this long ends an utterance (None: never)
    silence_ms: int | None = None  # no tokens for this long after speech reports "silence" (None: never)
    boost: int | None = None  # handle of the stream's phrase tree in its arena's ``BoostPool`` (None: no phrases)
    pending: int = 0  # mel frames final and not yet encoded (of every segment)
    emitted: Emissions = field(default_factory=Emissions)  # every token of the stream
    started: bool = False  # first chunk of the current segment encoded
    input_done: bool = False  # finish() was called
    closed: bool = False
    samples_in: int = 0  # model-rate samples received
    segment_input: int = 0  # input samples received since the last flush (or the start)
    segment_samples: int = 0  # model-rate samples of the current segment
    frame_offset: int = 0  # stream frame where the current segment's encoder frame 0 lies
    frames_decoded: int = 0  # stream frame up to which the encoder output is decoded
    blank_frames: int = 0  # decoded frames since the last token
    silence_armed: bool = False  # a token came since the last "silence" event
    held: bool = False  # an endpoint is due but waits: the utterance's last piece may not end its word
    utterance_id: int = 0
    utterance_start_frame: int | None = None  # frame of the utterance's first token
    seq: int = 0
    ready_at: deque = field(default_factory=deque)  # monotonic time each runnable step became ready
    segment_ends: deque = field(default_factory=deque)  # SegmentEnd, oldest first

    def push(self, samples: np.ndarray, last: bool = False) -> None:
        audio = self.resampler.process(samples, last=last)
        self.samples_in += len(audio)
        self.segment_input += len(samples)
        self.segment_samples += len(audio)
        self.pending += self.windows.accept(audio)
        if last and self.segment_samples:  # a segment without samples has no frames (offline: no tokens)
            self.pending += self.windows.finish()

    def end_segment(self) -> None:
        """Flush the resampler and the front end as at the end of the input; audio pushed
        later goes through a fresh front end into the next segment."""
        self.push(np.zeros(0, np.float32), last=True)
        self.segment_ends.append(SegmentEnd(self.pending, self.samples_in, self.windows))
        self.windows = SampleWindows(self.windows.config)
        self.segment_input = self.segment_samples = 0

    def take(self, frames: int) -> FrameAudio:
        """The next ``frames`` frames (of the oldest segment not yet encoded), as samples."""
        self.pending -= frames
        for end in self.segment_ends:
            end.frames -= frames
        return (self.segment_ends[0].windows if self.segment_ends else self.windows).take(frames)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq - 1
