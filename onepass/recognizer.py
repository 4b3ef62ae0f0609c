"""The Python API: a loaded model that transcribes arrays/files and opens streaming sessions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import SAMPLE_RATE, load_for_model
from .decoding.greedy import Emissions
from .decoding.phrases import CompiledPhrases, HotwordSettings, compile_phrases, hotword_settings
from .decoding.transcript import FRAME_S, extend, make_transcript
from .languages import Language, resolve_language, supported_languages
from .model.asr import NemotronASR
from .model.config import ModelConfig
from .results import Transcript
from .step import ModelStep, StepConfig
from .step.offline import OFFLINE_BLOCK_FRAMES, decode_features
from .tokenizer import Tokenizer

__all__ = ["FRAME_S", "OFFLINE_BLOCK_FRAMES", "ModelInfo", "Recognizer", "extend", "make_transcript"]


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
        self._step: ModelStep | None = None

    @property
    def model_step(self) -> ModelStep:
        """The model step every transcription, stream and engine of this recognizer runs through."""
        if self._step is None:
            self._step = ModelStep(self.model)
        return self._step

    def configure_step(self, config: StepConfig) -> None:
        """Step settings (decoder, buckets, CUDA graphs) for what runs from now on."""
        self._step = ModelStep(self.model, config)

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
                   language: str | None = None, chunk_ms: int | None = None, hotwords=None,
                   hotword_boost: float | None = None) -> Transcript:
        """Offline transcription of a file or an array (any rate, mono or (n, channels)).
        ``hotwords``: phrases to boost; ``hotword_boost``: their bonus (see ``stream``)."""
        samples, _ = load_for_model(audio, sample_rate)
        return self.transcribe_batch([samples], language=language, chunk_ms=chunk_ms, hotwords=hotwords,
                                     hotword_boost=hotword_boost)[0]

    def hotwords(self, hotwords, boost: float | None = None) -> CompiledPhrases | None:
        """Phrases -> their prefix tree over this model's pieces (None for none); OnePassError past a limit."""
        settings = hotword_settings(hotwords, boost)
        return compile_phrases(self.tokenizer, settings, self.model_step.config.beam) if settings else None

    def transcribe_batch(self, audios: list[np.ndarray], *, language: str | list[str | None] | None = None,
                         chunk_ms: int | None = None, hotwords=None,
                         hotword_boost: float | None = None) -> list[Transcript]:
        """Offline transcription of 16 kHz mono float32 arrays, batched with padding. ``hotwords``:
        one list of phrases for every audio, or a list with one list (or ``HotwordSettings``) per audio."""
        if not audios:
            return []
        langs = language if isinstance(language, list) else [language] * len(audios)
        resolved = [self.language(lang) for lang in langs]
        r = self.config.right_context_for_chunk_ms(chunk_ms)
        per_audio = (isinstance(hotwords, list) and len(hotwords) == len(audios) and len(audios) > 0
                     and all(isinstance(h, (list, tuple, HotwordSettings)) or h is None for h in hotwords))
        lists = hotwords if per_audio else [hotwords] * len(audios)
        if any(len(a) == 0 for a in audios):  # no samples: no tokens (as a stream closed without audio)
            keep = [i for i, a in enumerate(audios) if len(a)]
            done = self.transcribe_batch([audios[i] for i in keep], language=[langs[i] for i in keep],
                                         chunk_ms=chunk_ms, hotwords=[lists[i] for i in keep],
                                         hotword_boost=hotword_boost)
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
        trees = [self.hotwords(h, hotword_boost) if h else None for h in lists]
        prompts = [lang.prompt or 0 for lang in resolved]
        emissions = decode_features(self.model_step, feats, mel_len.tolist(), r, prompts, trees)
        return [make_transcript(self.tokenizer, lang, e, len(a) / SAMPLE_RATE)
                for lang, e, a in zip(resolved, emissions, audios)]

    def stream(self, language: str | None = None, chunk_ms: int | None = None, *, hotwords=None,
               hotword_boost: float | None = None):
        """Open a push-style streaming session (see ``onepass.streaming.StreamingSession``).
        ``hotwords``: phrases to boost (names, product words; a phrase may span words), as strings
        or ``Phrase(text, boost)``; ``hotword_boost``: the bonus of those without their own
        (``onepass.decoding.phrases.default_boost``: lower under beam search)."""
        from .streaming import StreamingSession

        return StreamingSession(self, language=language, chunk_ms=chunk_ms, hotwords=hotwords,
                                hotword_boost=hotword_boost)
