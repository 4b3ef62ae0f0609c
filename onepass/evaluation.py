"""Word error rate over NeMo-style manifests (JSON lines: audio_filepath, text, lang, duration)."""

from __future__ import annotations

import json
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import OnePassError
from .manifest import manifest_lines


@dataclass(frozen=True)
class ManifestEntry:
    audio_filepath: Path
    text: str
    lang: str | None
    duration_s: float | None


@dataclass
class LanguageScore:
    utterances: int = 0
    audio_s: float = 0.0
    refs: list[str] = field(default_factory=list)  # normalised references
    hyps: list[str] = field(default_factory=list)
    refs_cased: list[str] = field(default_factory=list)  # as written: case and punctuation count
    hyps_cased: list[str] = field(default_factory=list)
    detected_right: int = 0  # auto mode: detected language == manifest language


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    path = Path(path)
    entries = []
    for n, line in manifest_lines(path):
        try:
            row = json.loads(line)
            audio = Path(row["audio_filepath"])
            text = str(row["text"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OnePassError(f"{path}:{n}: not a manifest line with audio_filepath and text ({exc})") from None
        if not audio.is_absolute():
            audio = path.parent / audio
        entries.append(ManifestEntry(audio, text, row.get("lang") or row.get("language"), row.get("duration")))
    if not entries:
        raise OnePassError(f"manifest {path} has no entries")
    return entries


def normalize(text: str) -> str:
    """Lowercase, punctuation removed (apostrophes inside words kept), spaces collapsed."""
    out = []
    for ch in unicodedata.normalize("NFC", text.lower()):
        if unicodedata.category(ch).startswith("P") and ch != "'":
            out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).replace(" '", " ").replace("' ", " ").split())


def prediction_row(entry: ManifestEntry, result) -> dict:
    """A manifest line with the transcript added as NeMo's ``pred_text`` (plus this utterance's WER)."""
    return {"audio_filepath": str(entry.audio_filepath), "text": entry.text, "lang": entry.lang,
            "duration": entry.duration_s, "pred_text": result.text, "language": result.language,
            "wer": word_error_rate([normalize(entry.text)], [normalize(result.text)])}


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
    if not pairs:
        return 0.0
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def _stream_batch(recognizer, entries, samples: list, language: str | None, chunk_ms: int | None) -> list:
    """Transcripts of ``entries`` streamed together through one engine: each stream is encoded chunk by
    chunk with its caches (the streaming path, same tokens as ``recognizer.stream``), the streams batched
    per step as a server batches live ones."""
    from .engine import Engine, EngineConfig

    n = len(entries)
    engine = Engine(recognizer, EngineConfig(max_batch=n, max_streams=n, endpoint_blank_ms=None))
    ids = []
    for entry, x in zip(entries, samples):
        sid = engine.open(language or entry.lang, chunk_ms)
        engine.accept(sid, x)
        engine.finish(sid)
        ids.append(sid)
    done = {e.stream_id: e.transcript for e in engine.run_until_idle() if e.kind == "closed"}
    return [done[sid] for sid in ids]


def evaluate(recognizer, entries: list[ManifestEntry], *, language: str | None = None, chunk_ms: int | None = None,
             mode: str = "offline", progress=None, streams: int = 16, on_result=None) -> dict:
    """Transcribe every entry and score it; returns the report as a dict (JSON-ready).

    ``mode="stream"`` runs up to ``streams`` utterances at a time through the engine (cache-aware
    chunks, batched across streams; RTFx is then the aggregate throughput); offline transcribes one
    utterance at a time. ``on_result(entry, result)`` is called for each utterance as it is done."""
    from .audio import load_for_model

    if mode == "stream" and streams < 1:
        raise OnePassError(f"streams must be at least 1, got {streams}")
    scores: dict[str, LanguageScore] = {}
    wall = 0.0
    group = streams if mode == "stream" else 1
    batches = [entries[i:i + group] for i in range(0, len(entries), group)]
    for batch in (progress(batches) if progress else batches):
        loaded = [load_for_model(entry.audio_filepath) for entry in batch]
        start = time.perf_counter()
        if mode == "stream":
            results = _stream_batch(recognizer, batch, [x for x, _ in loaded], language, chunk_ms)
        else:
            results = recognizer.transcribe_batch([loaded[0][0]], language=language or batch[0].lang,
                                                  chunk_ms=chunk_ms)
        wall += time.perf_counter() - start
        for entry, (_, duration), result in zip(batch, loaded, results):
            s = scores.setdefault(entry.lang or "all", LanguageScore())
            s.utterances += 1
            s.audio_s += duration
            s.refs.append(normalize(entry.text))
            s.hyps.append(normalize(result.text))
            s.refs_cased.append(entry.text)
            s.hyps_cased.append(result.text)
            if on_result is not None:
                on_result(entry, result)
            if result.language_detected and entry.lang and result.language:
                s.detected_right += recognizer.language(entry.lang).prompt == recognizer.language(result.language).prompt
    all_refs = [r for s in scores.values() for r in s.refs]
    all_hyps = [h for s in scores.values() for h in s.hyps]
    audio_s = sum(s.audio_s for s in scores.values())
    report = {
        "model": recognizer.info.name, "backend": recognizer.backend, "mode": mode, "chunk_ms": chunk_ms,
        "language": language or "manifest",
        **({"streams": streams} if mode == "stream" else {}),
        "utterances": len(all_refs), "audio_s": round(audio_s, 2),
        "rtfx": round(audio_s / wall, 2) if wall else None,
        "wer": word_error_rate(all_refs, all_hyps),
        "wer_cased_punctuated": word_error_rate([r for s in scores.values() for r in s.refs_cased],
                                                [h for s in scores.values() for h in s.hyps_cased]),
        "languages": {
            lang: {"utterances": s.utterances, "audio_s": round(s.audio_s, 2),
                   "wer": word_error_rate(s.refs, s.hyps),
                   "wer_cased_punctuated": word_error_rate(s.refs_cased, s.hyps_cased),
                   **({"language_id_accuracy": s.detected_right / s.utterances}
                      if (language or "").lower() == "auto" else {})}
            for lang, s in sorted(scores.items())},
    }
    return report
