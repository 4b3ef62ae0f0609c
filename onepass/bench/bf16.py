"""bf16 vs fp32 token agreement on real-size random weights (issue 29: precision).

    python -m onepass.bench.bf16 [--preset nemotron-3.5] [--clips 6] [--seconds 8] [--chunk-ms 560]

Builds the calibrated random-init model of ``bench.factory`` (real shapes, a realistic blank
rate), transcribes speech-like clips through the model step in float32 and with the network in
bfloat16 (front end in float32 in both, so both see the same features), and prints per-clip and
total token agreement, 1 - (token edit distance / fp32 tokens), as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from ..recognizer import Recognizer
from .audio import speech_like
from .factory import random_pair


def edit_distance(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def bf16_copy(asr: Recognizer) -> Recognizer:
    model = copy.deepcopy(asr.model).to(torch.bfloat16)
    model.frontend.float()
    model.encoder.clear_tables()
    return Recognizer(model, asr.tokenizer, asr.info)


def agreement(fp32: Recognizer, bf16: Recognizer, clips: int, seconds: float, chunk_ms: int, language: str,
              seed: int) -> dict:
    rows, edits, total = [], 0, 0
    for k in range(clips):
        audio = speech_like(seconds, seed + k)
        t0 = time.monotonic()
        ref = fp32.transcribe(audio, 16000, language=language, chunk_ms=chunk_ms).token_ids
        t1 = time.monotonic()
        got = bf16.transcribe(audio, 16000, language=language, chunk_ms=chunk_ms).token_ids
        t2 = time.monotonic()
        d = edit_distance(ref, got)
        edits, total = edits + d, total + len(ref)
        rows.append({"clip": k, "fp32_tokens": len(ref), "bf16_tokens": len(got), "edits": d,
                     "identical": ref == got, "fp32_s": round(t1 - t0, 1), "bf16_s": round(t2 - t1, 1)})
    return {"chunk_ms": chunk_ms, "clips": clips, "seconds_per_clip": seconds, "fp32_tokens": total,
            "edits": edits, "agreement": round(1 - edits / max(1, total), 5),
            "identical_clips": sum(r["identical"] for r in rows), "per_clip": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--preset", default="nemotron-3.5")
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--chunk-ms", type=int, default=560)
    p.add_argument("--language", default="en-US")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.monotonic()
    pair = random_pair(args.preset, with_hf=False, seed=args.seed, language=args.language)
    fp32 = pair.recognizer
    result = {"model": pair.description, "emission_rate": pair.emission_rate,
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    result.update(agreement(fp32, bf16_copy(fp32), args.clips, args.seconds, args.chunk_ms, args.language,
                            args.seed + 100))
    result["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
