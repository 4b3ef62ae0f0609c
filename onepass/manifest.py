"""Transcribing a NeMo-style manifest (JSON Lines with ``audio_filepath``, optional ``lang``).

The output has one JSON line per manifest line, in manifest order: the manifest's own fields
plus the fields of ``onepass transcribe --format json`` (a manifest field of the same name, such
as a reference ``text``, is kept as ``manifest_<name>``), or an ``error`` field for a file that
could not be transcribed. The job is resumable: lines appended while it runs (in completion
order) survive an interruption, a rerun skips every input already transcribed (failed ones are
tried again), and the finished file is rewritten in manifest order. The work itself is done by
an executor: in this process (``run_local``) or on a Ray Data actor pool (``onepass.ray.batch``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import OnePassError

MANIFEST_PREFIX = "manifest_"  # manifest fields named like a transcript field are kept under this prefix
# the fields of `onepass transcribe --format json` (Transcript.to_dict() and "file"), and "error"
OUTPUT_FIELDS = frozenset({"file", "text", "language", "language_detected", "words", "token_ids", "token_times_s",
                           "duration", "error"})


@dataclass(frozen=True)
class Item:
    """One manifest line to transcribe."""

    index: int  # position in the manifest (0-based, counting non-blank lines)
    key: str  # identity for resuming: entry_key(entry)
    entry: dict  # the manifest line's own fields
    path: str  # the audio file, relative paths resolved against the manifest's folder
    language: str | None  # the line's 'lang', else the job's language
    duration_s: float  # the line's 'duration' or the file header's; 0 when unknown (scheduled last)


@dataclass(frozen=True)
class Summary:
    total: int  # lines in the manifest
    skipped: int  # already in the output from an earlier run
    done: int  # transcribed by this run
    failed: int  # lines with an error (this run)


def manifest_lines(path: Path) -> list[tuple[int, str]]:
    """The non-blank lines of a JSON-lines manifest with their numbers (from 1): the one reader of
    manifest files (transcription jobs, ``onepass eval``, ``onepass finetune``); each caller parses
    the lines by its own rules. An unreadable file is a ``OnePassError``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise OnePassError(f"cannot read manifest {path}: {reason}") from None
    return [(n, line) for n, line in enumerate(lines, 1) if line.strip()]


def read_manifest(path: str | Path, language: str | None = None) -> list[Item]:
    """Parse the manifest; a line that is not a JSON object with ``audio_filepath`` is an error."""
    path = Path(path)
    items = []
    for number, line in manifest_lines(path):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise OnePassError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("audio_filepath"), str):
            raise OnePassError(f"{path}:{number}: each line needs an \"audio_filepath\" string")
        audio = Path(entry["audio_filepath"]).expanduser()
        resolved = str(audio if audio.is_absolute() else path.parent / audio)
        items.append(Item(index=len(items), key=entry_key(entry), entry=entry, path=resolved,
                          language=entry.get("lang") or language, duration_s=_duration(entry, resolved)))
    return items


def entry_key(entry: dict) -> str:
    """Identity of a manifest line (equal lines are interchangeable: same file, same options)."""
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


def manifest_fields(line: dict) -> dict:
    """The manifest's own fields of an output line (undoing the ``manifest_`` renames)."""
    own = {}
    for k, v in line.items():
        if k in OUTPUT_FIELDS:
            continue
        if k.startswith(MANIFEST_PREFIX) and k[len(MANIFEST_PREFIX):] in OUTPUT_FIELDS:
            k = k[len(MANIFEST_PREFIX):]
        own[k] = v
    return own


def _duration(entry: dict, path: str) -> float:
    value = entry.get("duration")
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    try:
        import soundfile

        return float(soundfile.info(path).duration)
    except Exception:  # noqa: BLE001 - unreadable: it fails (and is reported) when transcribed
        return 0.0


def read_done(output: str | Path) -> dict[str, list[str]]:
    """Lines of an earlier run that succeeded, by manifest line key (a torn line is ignored)."""
    done: dict[str, list[str]] = {}
    try:
        with open(output, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return done
    for line in lines:
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(d, dict) and "error" not in d and "text" in d:
            done.setdefault(entry_key(manifest_fields(d)), []).append(line)
    return done


def output_line(item: Item, transcribe: Callable[[str, str | None], object]) -> str:
    """Transcribe one item (``transcribe(path, language) -> Transcript``) into its output line;
    any failure is recorded on the line, never raised."""
    from .writers import format_transcript

    try:
        result = transcribe(item.path, item.language)
        fields = json.loads(format_transcript(result, "json", path_hint=item.path))
    except OnePassError as exc:
        fields = {"file": item.path, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the job
        fields = {"file": item.path, "error": f"{type(exc).__name__}: {exc}"}
    own = {(MANIFEST_PREFIX + k if k in OUTPUT_FIELDS else k): v for k, v in item.entry.items()}
    return json.dumps({**own, **fields}, ensure_ascii=False)


def run_job(manifest: str | Path, output: str | Path, execute: Callable[[list[Item]], Iterable[str]],
            language: str | None = None, progress: bool = True) -> Summary:
    """Transcribe what ``output`` lacks with ``execute`` (items -> their output lines, in any
    order), appending each line as it comes; then rewrite ``output`` in manifest order."""
    items = read_manifest(manifest, language)
    output = Path(output)
    done = read_done(output)
    have = {k: len(v) for k, v in done.items()}
    todo = []
    for item in items:
        if have.get(item.key, 0) > 0:
            have[item.key] -= 1
        else:
            todo.append(item)
    todo.sort(key=lambda i: (-i.duration_s, i.index))  # longest first: no long file left for the end
    errors: dict[str, list[str]] = {}
    if todo:
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(output, "a", encoding="utf-8") as out, _progress(len(todo), progress) as bar:
            if out.tell() and not _ends_with_newline(output):
                out.write("\n")  # an interrupted run may have left half a line
            for line in execute(todo):
                d = json.loads(line)
                (errors if "error" in d else done).setdefault(entry_key(manifest_fields(d)), []).append(line)
                out.write(line + "\n")
                out.flush()
                bar.update(1)
    failed = sum(len(v) for v in errors.values())
    _write_ordered(output, items, done, errors)
    return Summary(total=len(items), skipped=len(items) - len(todo), done=len(todo) - failed, failed=failed)


def _write_ordered(output: Path, items: list[Item], done: dict[str, list[str]], errors: dict[str, list[str]]):
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for item in items:
            lines = done.get(item.key) or errors.get(item.key)
            if not lines:
                raise OnePassError(f"internal error: no result for {item.entry['audio_filepath']}")
            f.write(lines.pop(0) + "\n")
    os.replace(tmp, output)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", disable=not enabled, file=sys.stderr, smoothing=0.1)


# ---- the in-process executor ---------------------------------------------------------------
def transcriber(asr, chunk_ms: int | None, hotwords=None) -> Callable[[str, str | None], object]:
    """``(path, language) -> Transcript`` exactly as ``onepass transcribe`` (offline) makes it
    (``hotwords``: its ``--hotwords`` settings, or None)."""
    from .audio import load_for_model

    def transcribe(path: str, language: str | None):
        samples, _ = load_for_model(path)
        return asr.transcribe_batch([samples], language=language, chunk_ms=chunk_ms, hotwords=hotwords)[0]

    return transcribe


def run_local(asr, chunk_ms: int | None = None, hotwords=None) -> Callable[[list[Item]], Iterator[str]]:
    """The executor that transcribes in this process with ``asr``."""
    transcribe = transcriber(asr, chunk_ms, hotwords)

    def execute(items: list[Item]) -> Iterator[str]:
        for item in items:
            yield output_line(item, transcribe)

    return execute
