"""``onepass eval``: WER of a model on a NeMo-style manifest."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import OnePassError
from ..evaluation import evaluate, prediction_row, read_manifest
from .common import add_model_options, load


def add_parser(sub) -> None:
    p = sub.add_parser("eval", allow_abbrev=False, help="word error rate on a manifest",
                       description="Transcribe a NeMo-style JSONL manifest (audio_filepath, text, lang, "
                                   "duration) and report WER per language and overall.")
    p.add_argument("--manifest", required=True, help="JSON lines manifest")
    add_model_options(p)
    p.add_argument("--language", "-l", default=None, help="override the manifest's lang (e.g. auto)")
    p.add_argument("--chunk-ms", type=int, default=None, help="chunk size in ms (default: the model's)")
    p.add_argument("--mode", choices=["offline", "stream"], default="offline")
    p.add_argument("--streams", type=int, default=16,
                   help="with --mode stream: utterances streamed at once through the engine, batched per "
                        "chunk (default: %(default)s; RTFx is their aggregate throughput)")
    p.add_argument("--predictions", metavar="OUT.jsonl", default=None,
                   help="also write every utterance as a manifest line with its transcript (pred_text, "
                        "NeMo's convention) and its WER, as each is done")
    p.add_argument("--json", action="store_true", help="print only the JSON report")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    entries = read_manifest(args.manifest)
    sink = None
    if args.predictions:
        try:
            sink = open(args.predictions, "w", encoding="utf-8")
        except OSError as exc:
            raise OnePassError(f"cannot write predictions to {args.predictions}: {exc}") from None
    try:
        return _run(args, entries, sink)
    finally:
        if sink:
            sink.close()


def _run(args: argparse.Namespace, entries, sink) -> int:
    asr = load(args)
    asr.config.right_context_for_chunk_ms(args.chunk_ms)
    progress = None
    if not args.json:
        from tqdm import tqdm

        def progress(items):
            return tqdm(items, unit="batch" if args.mode == "stream" else "utt", file=sys.stderr, disable=None)

    def write(entry, result) -> None:
        sink.write(json.dumps(prediction_row(entry, result), ensure_ascii=False) + "\n")
        sink.flush()

    report = evaluate(asr, entries, language=args.language, chunk_ms=args.chunk_ms, mode=args.mode,
                      progress=progress, streams=args.streams, on_result=write if sink else None)
    if not args.json:
        print(f"{'language':10s} {'utts':>6s} {'audio s':>9s} {'WER %':>7s} {'cased+punct WER %':>18s}")
        for lang, s in report["languages"].items():
            print(f"{lang:10s} {s['utterances']:6d} {s['audio_s']:9.1f} {100 * s['wer']:7.2f} "
                  f"{100 * s['wer_cased_punctuated']:18.2f}")
        print(f"{'all':10s} {report['utterances']:6d} {report['audio_s']:9.1f} {100 * report['wer']:7.2f} "
              f"{100 * report['wer_cased_punctuated']:18.2f}   RTFx {report['rtfx']}")
    print(json.dumps(report))
    return 0
