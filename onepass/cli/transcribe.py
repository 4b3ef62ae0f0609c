"""``onepass transcribe``: files -> transcripts, offline or through the streaming path."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..audio import SAMPLE_RATE, load_for_model
from ..errors import OnePassError
from ..writers import FORMATS, format_transcript, output_path
from .common import add_model_options, load, report_bug
from .hotwords import add_hotword_options, hotwords_from_args
from .transcribe_manifest import add_manifest_options, check_no_manifest_options, run_manifest


def add_parser(sub) -> None:
    p = sub.add_parser("transcribe", allow_abbrev=False, help="transcribe audio files",
                       description="Transcribe audio files (wav, flac, ogg, mp3; more with ffmpeg).")
    p.add_argument("files", nargs="*", metavar="FILE")
    add_model_options(p)
    p.add_argument("--language", "-l", default=None,
                   help="language code (en, en-US, de-DE, ...) or 'auto' (default: the model's default)")
    p.add_argument("--chunk-ms", type=int, default=None,
                   help="chunk size in ms: 80, 160, 320, 560 or 1120 (default: the largest the model was trained with)")
    p.add_argument("--mode", choices=["offline", "stream"], default="offline",
                   help="offline: whole file at once; stream: cache-aware streaming, chunk by chunk")
    p.add_argument("--format", "-f", choices=FORMATS, default="txt", help="output format (default: %(default)s)")
    p.add_argument("--output-dir", "-o", default=None, help="write one file per input here instead of stdout")
    p.add_argument("--live", action="store_true", help="with --mode stream: print captions as chunks complete")
    p.add_argument("--realtime", action="store_true", help="with --mode stream: feed audio at real-time pace")
    add_hotword_options(p)
    add_manifest_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.manifest is not None:
        return run_manifest(args)
    if not args.files:
        raise OnePassError("give audio FILEs, or --manifest M.jsonl --output OUT.jsonl")
    check_no_manifest_options(args)
    if (args.live or args.realtime) and args.mode != "stream":
        args.mode = "stream"
    hotwords = hotwords_from_args(args)
    asr = load(args)
    asr.language(args.language)  # fail early on a bad language or chunk size, before any file
    asr.config.right_context_for_chunk_ms(args.chunk_ms)
    asr.hotwords(hotwords)  # ... or a phrase past a limit
    args.hotword_settings = hotwords
    out_dir = Path(args.output_dir) if args.output_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    files = _progress(args.files, disable=args.live or len(args.files) < 2)
    for name in files:
        try:
            samples, _ = load_for_model(name)
            if args.mode == "stream":
                result = _stream(asr, samples, args)
            else:
                result = asr.transcribe_batch([samples], language=args.language, chunk_ms=args.chunk_ms,
                                              hotwords=hotwords)[0]
        except OnePassError as exc:
            print(f"onepass: error: {name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        except Exception as exc:  # a bug: report it, go on with the other files
            report_bug(exc, args.debug, context=name)
            failed += 1
            continue
        text = format_transcript(result, args.format, path_hint=name)
        if out_dir:
            output_path(name, args.format, out_dir).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()
    if failed:
        print(f"onepass: {failed} of {len(args.files)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _stream(asr, samples, args):
    session = asr.stream(language=args.language, chunk_ms=args.chunk_ms, hotwords=args.hotword_settings)
    step = session.chunk_ms * SAMPLE_RATE // 1000
    start = time.monotonic()
    for pos in range(0, len(samples), step):
        if args.realtime:
            delay = start + pos / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        update = session.accept(samples[pos:pos + step], SAMPLE_RATE)
        if args.live and update.delta:
            sys.stderr.write(update.delta)
            sys.stderr.flush()
    result = session.finish()
    if args.live:
        tail = session.last_update.delta
        sys.stderr.write(tail + "\n")
        sys.stderr.flush()
    return result


def _progress(items, disable: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return items
    return tqdm(items, unit="file", disable=disable or None, file=sys.stderr)
