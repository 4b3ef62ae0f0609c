"""Emitted labels -> a ``Transcript``; the encoder frame length in seconds (shared below the API)."""

from __future__ import annotations

from ..languages import Language
from ..model.config import ENCODER_FRAME_MS
from ..results import Transcript
from ..tokenizer import Tokenizer
from .greedy import Emissions
from .text import render

FRAME_S = ENCODER_FRAME_MS / 1000  # seconds per encoder frame


def extend(into: Emissions, new: Emissions) -> None:
    into.token_ids.extend(new.token_ids)
    into.frames.extend(new.frames)
    into.probs.extend(new.probs)


def make_transcript(tokenizer: Tokenizer, language: Language, e: Emissions, duration_s: float) -> Transcript:
    text, tags, words = render(tokenizer, e.token_ids, e.frames, e.probs, FRAME_S)
    code = tags[0] if (language.auto and tags) else language.code
    return Transcript(
        text=text, language=code, language_detected=language.auto, words=words,
        token_ids=list(e.token_ids), token_times_s=[f * FRAME_S for f in e.frames], duration_s=duration_s)
