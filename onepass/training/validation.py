"""Validation WER of the weights being trained, streamed through onepass's engine at each chunk size
(what a user of the fine-tuned model gets), and the same check before training starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .manifest import Utterance
from .network import Trainable, chunk_ms_of, recognizer_from


@dataclass(frozen=True)
class Validation:
    wer_by_chunk_ms: dict[int, float]  # streaming WER (normalised words) per chunk size

    @property
    def mean_wer(self) -> float:
        return sum(self.wer_by_chunk_ms.values()) / max(1, len(self.wer_by_chunk_ms))

    def line(self) -> str:
        per = ", ".join(f"{c} ms {w:.2%}" for c, w in sorted(self.wer_by_chunk_ms.items()))
        return f"WER {self.mean_wer:.2%} (streaming: {per})"


class Validator:
    def __init__(self, utterances: list[Utterance], default_language: str | None, chunk_ms: list[int],
                 tokenizer_json: Path, device: str | torch.device = "cpu", streams: int = 16):
        from ..evaluation import ManifestEntry

        self.entries = [ManifestEntry(u.audio_path, u.text, u.lang or default_language, u.duration_s)
                        for u in utterances]
        self.chunk_ms, self.tokenizer_json, self.device, self.streams = chunk_ms, tokenizer_json, device, streams

    def __call__(self, trainable: Trainable, model: torch.nn.Module | None = None) -> Validation:
        from ..evaluation import evaluate

        asr = recognizer_from(trainable, self.tokenizer_json, self.device, model)
        wers = {}
        for c in self.chunk_ms:
            report = evaluate(asr, self.entries, chunk_ms=c, mode="stream", streams=self.streams)
            wers[c] = float(report["wer"])
        return Validation(wers)


def default_chunks(trainable: Trainable, wanted: tuple[int, ...] = ()) -> list[int]:
    """The chunk sizes to validate: ``wanted`` (checked against the model's), else every one it has."""
    from ..errors import OnePassError

    have = [chunk_ms_of(r) for r in trainable.right_contexts]
    if not wanted:
        return have
    bad = [c for c in wanted if c not in have]
    if bad:
        raise OnePassError(f"chunk sizes {bad} ms are not the model's ({', '.join(map(str, have))} ms)")
    return list(wanted)
