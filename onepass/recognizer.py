"""The Python API: a loaded model that transcribes arrays/files and opens streaming sessions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import SAMPLE_RATE, load_for_model
from .decoding.greedy import Emissions
from .decoding.step import StreamBatch, block_mel_frames
from .decoding.text import render
from .languages import Language, resolve_language, supported_languages
from .model.asr import NemotronASR
from .model.config import ENCODER_FRAME_MS, ModelConfig
from .results import Transcript
from .tokenizer import Tokenizer

OFFLINE_BLOCK_FRAMES = 96  # encoder frames per offline block (~7.7 s): bounds memory on long audio
FRAME_S = ENCODER_FRAME_MS / 1000


@dataclass(frozen=True)
class ModelInfo:
    source: str  # what was asked for (path, hub id, "demo")
    path: str  # where the files are
    format: str  # "hf" or "nemo"
    name: str


class Recognizer:
    def __init__(self, model: NemotronASR, tokenizer: Tokenizer, info: ModelInfo):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = info

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def backend(self) -> str:
        """Where the encoder runs: "torch", or "onnxruntime" plus its weight format ("onnxruntime-int8")."""
        return getattr(self.model, "backend", "torch")

    @property
    def device(self) -> torch.device:
        return self.model.joint.head.weight.device

    def languages(self) -> list[str]:
        return supported_languages(self.config)

    def language(self, language: str | None) -> Language:
        return resolve_language(self.config, language)

    def transcribe(self, audio: str | Path | np.ndarray, sample_rate: int | None = None, *,
                   language: str | None = None, chunk_ms: int | None = None) -> Transcript:
        """Offline transcription of a file or an array (any rate, mono or (n, channels))."""
        samples, _ = load_for_model(audio, sample_rate)
        return self.transcribe_batch([samples], language=language, chunk_ms=chunk_ms)[0]

    def transcribe_batch(self, audios: list[np.ndarray], *, language: str | list[str | None] | None = None,
                         chunk_ms: int | None = None) -> list[Transcript]:
        """Offline transcription of 16 kHz mono float32 arrays, batched with padding."""
        if not audios:
            return []
        langs = language if isinstance(language, list) else [language] * len(audios)
        resolved = [self.language(lang) for lang in langs]
        r = self.config.right_context_for_chunk_ms(chunk_ms)
        if any(len(a) == 0 for a in audios):  # no samples: no tokens (as a stream closed without audio)
            keep = [i for i, a in enumerate(audios) if len(a)]
            done = self.transcribe_batch([audios[i] for i in keep], language=[langs[i] for i in keep],
                                         chunk_ms=chunk_ms)
            out = [make_transcript(self.tokenizer, lang, Emissions(), 0.0) for lang in resolved]
            for i, t in zip(keep, done):
                out[i] = t
            return out
        lengths = torch.tensor([len(a) for a in audios])
        padded = torch.zeros(len(audios), int(lengths.max()))
        for i, a in enumerate(audios):
            padded[i, :len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
        with torch.no_grad():
            feats, mel_len = self.model.frontend(padded.to(self.device), lengths.to(self.device))
        batch = StreamBatch(self.model, len(audios), r, [lang.prompt for lang in resolved])
        emissions = [Emissions() for _ in audios]
        chunks = max(1, OFFLINE_BLOCK_FRAMES // (r + 1))
        pos, first = 0, True
        mel_len = mel_len.cpu()
        while True:
            size = block_mel_frames(self.model, r, chunks, first)
            valid = torch.clamp(mel_len - pos, min=0, max=size)
            final = mel_len <= pos + size
            for e, new in zip(emissions, batch.step(feats[:, pos:pos + size], valid, final)):
                extend(e, new)
            pos, first = pos + size, False
            if bool(final.all()):
                break
        return [make_transcript(self.tokenizer, lang, e, len(a) / SAMPLE_RATE)
                for lang, e, a in zip(resolved, emissions, audios)]

    def stream(self, language: str | None = None, chunk_ms: int | None = None):
        """Open a push-style streaming session (see ``onepass.streaming.StreamingSession``)."""
        from .streaming import StreamingSession

        return StreamingSession(self, language=language, chunk_ms=chunk_ms)


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
