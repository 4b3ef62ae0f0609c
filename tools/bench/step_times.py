"""Engine step time at real size (random weights): torch fp32 vs ONNX Runtime fp32 / int8 / int4.

One engine step with N streams ready at a chunk size, mean of 6 after 3 warm steps
(``onepass.bench.onnx_runs.step_breakdown``); for ONNX Runtime also the share inside the session
call (the rest is torch: front end, subsampling, masks, greedy decoding, slot gather/scatter). A
step must take <= the chunk for N streams to run in real time.

    python tools/bench/step_times.py --formats torch,none,int8,int4 --onnx-root /work/op_real

Prints a table and one JSON object. Exports go to ONNX_ROOT/<format> (reused when present).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--formats", default="torch,none,int8,int4",
                    help="torch and/or ONNX formats none,int8,int4; int8-u8 / int8-s8: int8 with those weights")
    ap.add_argument("--cases", default="80x1,160x1,560x1,160x6,560x12", help="CHUNK_MSxSTREAMS, comma-separated")
    ap.add_argument("--onnx-root", type=Path, default=Path("/tmp/onepass-step-times"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from onepass.bench.audio import speech_like
    from onepass.bench.factory import random_pair
    from onepass.model.linear import Linear
    from onepass.onnx import to_onnxruntime
    from onepass.onnx.export import CORE_FILE, ExportSettings, export_onnx

    cases = [tuple(map(int, c.split("x"))) for c in args.cases.split(",")]
    formats = args.formats.split(",")
    audio = speech_like(6.0, 5)
    pair = random_pair("nemotron-3.5", with_hf=False)
    asr = pair.recognizer
    res: dict = {"machine": {"cpus": os.cpu_count(), "threads": args.threads, "load_start": os.getloadavg()},
                 "emission_rate": pair.emission_rate, "steps_ms": {}}

    if "torch" in formats:
        for m in asr.model.modules():  # the CPU default of load_model: oneDNN-prepacked weights
            if isinstance(m, Linear):
                m.prepack()
        res["steps_ms"]["torch"] = _breakdowns(asr, audio, cases)
    for q in [f for f in formats if f != "torch"]:
        d = args.onnx_root / q
        if not (d / CORE_FILE).exists():
            t = time.time()
            quantize, _, weights = q.partition("-")
            export_onnx(asr, d, ExportSettings(chunk_ms=560, quantize=quantize, sherpa=False,
                                               int8_weights=weights or ExportSettings.int8_weights))
            res[f"export_{q}_s"] = round(time.time() - t)
        oasr = to_onnxruntime(asr, d, threads=args.threads)
        res["steps_ms"][f"onnxruntime-{q}"] = _breakdowns(oasr, audio, cases)
        del oasr
    res["machine"]["load_end"] = os.getloadavg()
    print("| backend | " + " | ".join(f"{c} ms x {b}" for c, b in cases) + " |")
    print("|---|" + "---|" * len(cases))
    for name, row in res["steps_ms"].items():
        cells = []
        for c, b in cases:
            r = row[f"{c}x{b}"]
            cells.append(f"{r['step_ms']:.0f} ms ({c / r['step_ms']:.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("(step time; in brackets chunk / step: >= 1 means those streams keep up with real time)")
    print(json.dumps(res))


def _breakdowns(asr, audio, cases) -> dict:
    from onepass.bench.onnx_runs import step_breakdown

    return {f"{c}x{b}": {k: round(v, 3) for k, v in step_breakdown(asr, audio, c, b, "en-US").items()
                         if k in ("step_ms", "onnxruntime_share", "torch_ms")} for c, b in cases}


if __name__ == "__main__":
    main()
