"""Host-side state of one engine stream: audio in, mel frames waiting, tokens out."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from ..audio import StreamResampler
from ..decoding.greedy import Emissions
from ..decoding.text import IncrementalText
from ..languages import Language
from ..model.frontend import MelStream


@dataclass
class EngineStream:
    id: int
    right_context: int
    slot: int
    language: Language
    resampler: StreamResampler
    mel: MelStream
    pending: torch.Tensor  # (n, mels) mel frames not yet encoded
    text: IncrementalText  # the current utterance
    emitted: Emissions = field(default_factory=Emissions)  # every token of the stream
    started: bool = False  # first chunk encoded
    input_done: bool = False  # finish() was called
    closed: bool = False
    samples_in: int = 0  # model-rate samples received
    frames_decoded: int = 0  # encoder frames decoded
    blank_frames: int = 0  # decoded frames since the last token
    utterance_id: int = 0
    utterance_start_frame: int | None = None  # frame of the utterance's first token
    seq: int = 0
    ready_at: deque = field(default_factory=deque)  # monotonic time each waiting chunk became complete

    def push(self, samples: np.ndarray, last: bool = False) -> None:
        audio = self.resampler.process(samples, last=last)
        self.samples_in += len(audio)
        frames = self.mel.accept(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
        if last:
            frames = torch.cat([frames, self.mel.finish()])
        if len(frames):
            self.pending = torch.cat([self.pending, frames])

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq - 1
