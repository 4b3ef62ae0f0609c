"""WER of a model on NeMo-style manifests with onepass, offline and streaming (push API).

    python -m tools.demo_model.evaluate --model onepass/assets/demo \
        --manifest /work/demo_corpus/test.jsonl --chunk-ms 1120 80 --mode offline stream [--limit 50] [--json]
        [--lead-silence 0 5]

``--lead-silence S ...`` puts S seconds of digital silence before every clip and scores each S in turn: a
live stream that opens on a silence longer than the encoder's attention left context (4.5 s) starts from a
context full of silence, where a lone clip starts from an empty one.

WER is computed on normalised text (lowercase, punctuation removed, whitespace collapsed) and also on the
cased, punctuated text ("cased WER"). Streaming feeds the audio in pieces of the chunk size with
``session.accept`` and ends with ``session.finish``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf


def normalize(text: str) -> str:
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text.lower())
    return re.sub(r"\s+", " ", text).strip()


def clean_cased(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def run(asr, rows: list[dict], mode: str, chunk_ms: int, batch: int = 16,
        lead_s: float = 0.0) -> tuple[list[str], float]:
    """Hypotheses for rows (same order) and the processing time in seconds (``lead_s``: seconds of silence
    before each clip)."""
    lead = np.zeros(int(round(lead_s * 16000)), np.float32)
    audios = [np.concatenate([lead, sf.read(r["audio_filepath"], dtype="float32")[0]]) for r in rows]
    hyps: list[str] = [""] * len(rows)
    t0 = time.perf_counter()
    if mode == "offline":
        by_lang = defaultdict(list)
        for i, r in enumerate(rows):
            by_lang[r["lang"]].append(i)
        for lang, idx in by_lang.items():
            for s in range(0, len(idx), batch):
                part = idx[s: s + batch]
                outs = asr.transcribe_batch([audios[i] for i in part], language=lang, chunk_ms=chunk_ms)
                for i, o in zip(part, outs):
                    hyps[i] = o.text
    else:
        step = int(16000 * chunk_ms / 1000)
        for i, (r, a) in enumerate(zip(rows, audios)):
            session = asr.stream(language=r["lang"], chunk_ms=chunk_ms)
            for s in range(0, len(a), step):
                session.accept(a[s: s + step], 16000)
            hyps[i] = session.finish().text
    return hyps, time.perf_counter() - t0


def score(rows: list[dict], hyps: list[str]) -> dict:
    out = {}
    groups = defaultdict(list)
    for i, r in enumerate(rows):
        groups[r["lang"]].append(i)
    groups["all"] = list(range(len(rows)))
    for name, idx in groups.items():
        refs = [rows[i]["text"] for i in idx]
        hs = [hyps[i] for i in idx]
        out[name] = dict(
            n=len(idx),
            wer=round(jiwer.wer([normalize(t) for t in refs], [normalize(h) or "<empty>" for h in hs]), 4),
            cased_wer=round(jiwer.wer([clean_cased(t) for t in refs], [clean_cased(h) or "<empty>" for h in hs]), 4),
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="onepass/assets/demo")
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--chunk-ms", type=int, nargs="+", default=[1120, 80])
    ap.add_argument("--mode", nargs="+", default=["offline", "stream"], choices=["offline", "stream"])
    ap.add_argument("--limit", type=int, help="first N utterances per language")
    ap.add_argument("--show", type=int, default=0, help="print N example hypotheses")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--lead-silence", type=float, nargs="+", default=[0.0], metavar="S",
                    help="seconds of silence before each clip; several: one result each")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    import onepass

    torch.set_num_threads(args.threads)
    asr = onepass.load_model(args.model)
    rows = [json.loads(line) for line in args.manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.limit:
        seen = defaultdict(int)
        kept = []
        for r in rows:
            if seen[r["lang"]] < args.limit:
                kept.append(r)
                seen[r["lang"]] += 1
        rows = kept
    audio_s = sum(r["duration"] for r in rows)
    results = []
    for chunk_ms in args.chunk_ms:
        for mode in args.mode:
            for lead_s in args.lead_silence:
                hyps, secs = run(asr, rows, mode, chunk_ms, lead_s=lead_s)
                res = dict(chunk_ms=chunk_ms, mode=mode, lead_silence_s=lead_s, rtfx=round(audio_s / secs, 2),
                           langs=score(rows, hyps))
                results.append(res)
                line = "  ".join(f"{k} {v['wer'] * 100:.1f}% (cased {v['cased_wer'] * 100:.1f}%)"
                                 for k, v in res["langs"].items())
                lead = f" lead {lead_s:g} s" if lead_s else ""
                print(f"{chunk_ms:5d} ms {mode:8s}{lead} RTFx {res['rtfx']:6.1f}  {line}", flush=True)
                for r, h in list(zip(rows, hyps))[: args.show]:
                    print(f"    REF {r['text']}\n    HYP {h}")
    if args.json:
        print(json.dumps(dict(model=str(args.model), manifest=str(args.manifest), n=len(rows), results=results)))


if __name__ == "__main__":
    main()
