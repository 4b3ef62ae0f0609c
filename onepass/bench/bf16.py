"""bf16 vs fp32 token agreement on real-size random weights (issue 29: precision).

    python -m onepass.bench.bf16 [--preset nemotron-3.5] [--clips 6] [--seconds 8] [--chunk-ms 560]

Builds the calibrated random-init model of ``bench.factory`` (real shapes, a realistic blank
rate), transcribes speech-like clips through the model step in float32 and with the network in
bfloat16 (front end in float32 in both, so both see the same features), and prints per-clip and
total token agreement, 1 - (token edit distance / fp32 tokens), as JSON, with the relative error
of the joint-ready encoder projection (what the decoder sees) on the first clip.

Measured here (2-core EPYC, torch 2.13 CPU, 8 clips x 6 s at 160 ms): agreement -0.10 (202 edits
on 183 fp32 tokens, no clip identical) with a projection error of 6.3 % (per layer 0.6 % after the
subsampling, growing to 3.8 % at layer 24). Random weights have no trained margins: the joint's
best label often wins by less than that error, and one changed label changes the prediction
net's state and the rest of the sequence. So this bounds nothing about trained checkpoints; it
says the bf16 path runs, and the figure to compare against is the GPU check's on real weights.
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


@torch.no_grad()
def projection_error(fp32: Recognizer, bf16: Recognizer, audio, chunk_ms: int, language: str) -> float:
    """||proj_bf16 - proj_fp32|| / ||proj_fp32|| of one clip, through one final step each."""
    x = torch.from_numpy(audio)[None]
    feats, n = fp32.model.frontend(x, torch.tensor([x.shape[1]]))
    r = fp32.config.right_context_for_chunk_ms(chunk_ms)
    prompt = torch.tensor([fp32.language(language).prompt or 0])
    outs = []
    for asr in (fp32, bf16):
        m = asr.model
        state = m.encoder.initial_state(1)
        _, proj, valid = m.encode(feats.to(m.joint.head.weight.dtype), n, torch.tensor([True]), state, r, prompt)
        outs.append(proj[0, :int(valid[0])].float())
    return float((outs[1] - outs[0]).norm() / outs[0].norm())


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
    bf16 = bf16_copy(fp32)
    result["projection_rel_error"] = round(projection_error(fp32, bf16, speech_like(args.seconds, args.seed + 100),
                                                            args.chunk_ms, args.language), 5)
    result.update(agreement(fp32, bf16, args.clips, args.seconds, args.chunk_ms, args.language, args.seed + 100))
    result["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
