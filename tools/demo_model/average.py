"""Average the weights of trained demo models (HF directories of one architecture and tokenizer).

    python -m tools.demo_model.average --out WORK/demo_corpus9/avg32/hf_ema DIR_A DIR_B [DIR_C ...]

Every floating-point tensor of ``model.safetensors`` becomes the mean of the inputs' (``DIR=W`` gives an
input the weight W; weights are normalised to sum to 1); integer tensors are taken from the last input.
The other files (config, tokenizer, processor) are copied from the last input; the inputs must agree on
config.json's model fields and tokenizer.json, and hold the same tensor names and shapes, or nothing is
written. The demo model's last long-form stages end in such an average of consecutive stages (run31 and
run32): each stage's moving average is one point of a noisy path, and their mean transcribes long
streams better than either (docs/history/demo-model-training-log.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from .export import FILES

WEIGHTS = "model.safetensors"


def parse_input(text: str) -> tuple[Path, float]:
    path, sep, weight = text.rpartition("=")
    if not sep:
        return Path(text), 1.0
    w = float(weight)
    if not w > 0:
        raise ValueError(f"{text}: the weight must be positive")
    return Path(path), w


def check_same(dirs: list[Path]) -> None:
    """The inputs are one architecture with one tokenizer (ValueError otherwise)."""
    def model_fields(d: Path) -> dict:
        cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
        return {k: v for k, v in cfg.items() if k not in ("_name_or_path", "transformers_version")}
    first = dirs[0]
    for d in dirs[1:]:
        if model_fields(d) != model_fields(first):
            raise ValueError(f"{d}/config.json differs from {first}/config.json")
        if (d / "tokenizer.json").read_bytes() != (first / "tokenizer.json").read_bytes():
            raise ValueError(f"{d}/tokenizer.json differs from {first}/tokenizer.json")


def average(inputs: list[tuple[Path, float]], out: Path) -> dict[str, int]:
    """Writes the weighted mean of the inputs' weights to ``out`` (an HF directory); returns counts of the
    tensors averaged and copied."""
    if len(inputs) < 2:
        raise ValueError("give at least two directories to average")
    dirs = [d for d, _ in inputs]
    check_same(dirs)
    total = sum(w for _, w in inputs)
    tensors = [load_file(str(d / WEIGHTS)) for d in dirs]
    last = tensors[-1]
    for d, t in zip(dirs, tensors):
        if set(t) != set(last) or any(t[k].shape != last[k].shape for k in last):
            raise ValueError(f"{d}/{WEIGHTS}: tensor names or shapes differ from {dirs[-1]}")
    merged, counts = {}, {"averaged": 0, "copied": 0}
    for k, v in last.items():
        if v.is_floating_point():
            acc = sum(t[k].double() * (w / total) for t, (_, w) in zip(tensors, inputs))
            merged[k] = acc.to(v.dtype).contiguous()
            counts["averaged"] += 1
        else:
            merged[k] = v
            counts["copied"] += 1
    out.mkdir(parents=True, exist_ok=True)
    for f in FILES:
        if f != WEIGHTS:
            shutil.copyfile(dirs[-1] / f, out / f)
    save_file(merged, str(out / WEIGHTS), metadata={"format": "pt"})
    return counts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the averaged HF directory")
    ap.add_argument("inputs", nargs="+", help="HF directories, each optionally DIR=WEIGHT")
    args = ap.parse_args(argv)
    inputs = [parse_input(s) for s in args.inputs]
    counts = average(inputs, args.out)
    print(f"averaged {counts['averaged']} tensors (copied {counts['copied']}) of "
          + ", ".join(f"{d} x {w:g}" for d, w in inputs) + f" -> {args.out}")


if __name__ == "__main__":
    main()
