"""Training manifests (NeMo style: audio_filepath, text, optional lang and duration), checked line by
line: a bad line is listed and skipped, never fatal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import OnePassError
from ..manifest import manifest_lines
from .text import normalize_target


@dataclass(frozen=True)
class Utterance:
    audio_path: Path
    text: str  # the training target (normalize_target of the manifest text)
    lang: str | None  # the manifest's lang (or language) field
    duration_s: float  # from the audio file's header
    line: int  # 1-based line in its manifest


@dataclass(frozen=True)
class Problem:
    """A manifest line that is skipped, and why."""

    manifest: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.manifest}:{self.line}: {self.reason}"


def _duration(path: Path) -> float:
    import soundfile as sf

    info = sf.info(str(path))
    if info.frames <= 0 or info.samplerate <= 0:
        raise ValueError("no samples")
    return info.frames / info.samplerate


def read_training_manifest(path: str | Path, max_utterance_s: float = 40.0) -> tuple[list[Utterance], list[Problem]]:
    """(usable utterances, skipped lines). A missing or empty manifest is a ``OnePassError``; bad lines
    (not JSON, no audio_filepath or text, empty text, missing or unreadable audio, too long) are
    skipped. Relative audio paths are relative to the manifest's folder."""
    path = Path(path)
    good: list[Utterance] = []
    bad: list[Problem] = []
    for n, line in manifest_lines(path):

        def skip(reason: str) -> None:
            bad.append(Problem(str(path), n, reason))

        try:
            row = json.loads(line)
        except ValueError as exc:
            skip(f"not JSON ({exc})")
            continue
        if not isinstance(row, dict) or not row.get("audio_filepath"):
            skip("no audio_filepath")
            continue
        text = normalize_target(str(row.get("text") or ""))
        if not text:
            skip("empty text")
            continue
        audio = Path(str(row["audio_filepath"])).expanduser()
        if not audio.is_absolute():
            audio = path.parent / audio
        if not audio.is_file():
            skip(f"missing audio file {audio}")
            continue
        try:
            seconds = _duration(audio)
        except Exception as exc:  # soundfile raises its own error types for unreadable files
            skip(f"unreadable audio {audio} ({type(exc).__name__}: {exc})")
            continue
        if seconds > max_utterance_s:
            skip(f"audio {audio} is {seconds:.1f} s, longer than {max_utterance_s:g} s")
            continue
        lang = row.get("lang") or row.get("language")
        good.append(Utterance(audio, text, str(lang) if lang else None, seconds, n))
    if not good:
        detail = "; ".join(str(p) for p in bad[:3])
        raise OnePassError(f"manifest {path} has no usable lines" + (f" ({detail})" if detail else ""))
    return good, bad
