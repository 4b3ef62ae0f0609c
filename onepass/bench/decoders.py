"""The step's two greedy decoders on the CPU: windowed ``greedy_decode`` vs label looping.

    python -m onepass.bench.decoders [--blank-bias 4.8] [--reps 7]

Real-size prediction net and joint (640 wide, 13088 labels) on random weights, random encoder
projections; the blank bias sets how often labels come (4.8: about 0.4 per frame, the
calibrated random model's rate). Prints the median wall time of each decoder per (streams,
frames). Measured here (2-core EPYC, torch 2.13, load from other jobs): 8 streams x 7 frames,
20 labels: windowed 277 ms, label looping with one flag read per iteration 404 ms (1.46x), with
the fixed bound 1898 ms (6.9x); 32 x 2, 110 labels: 438 / 596 / 1017 ms. So the eager CPU step
keeps the windowed decoder (``StepConfig.decoder="auto"``); the fixed bound is for CUDA graphs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ..decoding.greedy import greedy_decode, initial_decoder_state
from ..decoding.label_looping import label_looping_decode
from ..model.asr import NemotronASR
from ..model.config import EncoderConfig, ModelConfig


def decoder_model(blank_bias: float, seed: int = 0) -> NemotronASR:
    """Real-size prediction net and joint; a one-layer toy encoder (unused)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=64, num_heads=2, ff_size=64,
                                            subsampling_channels=8))
    m = NemotronASR(cfg).eval()
    with torch.no_grad():
        for p in m.decoder.parameters():
            if p.dim() >= 2:
                p.normal_(0, p.shape[-1] ** -0.5)
        m.joint.head.weight.normal_(0, m.config.pred_hidden ** -0.5)
        m.joint.head.bias.zero_()
        m.joint.head.bias[cfg.blank_id] = blank_bias
    m.prepack()
    return m


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--blank-bias", type=float, default=4.8)
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args(argv)
    m = decoder_model(args.blank_bias)
    for b, t in [(1, 7), (8, 7), (8, 2), (32, 2)]:
        enc = torch.randn(b, t, m.config.pred_hidden)
        valid, off = torch.full((b,), t), torch.zeros(b, dtype=torch.long)
        runs = {"windowed": lambda st: greedy_decode(m, enc, valid, st, off),
                "label looping, sync 1": lambda st: label_looping_decode(m, enc, valid, st, off, sync_every=1),
                "label looping, fixed bound": lambda st: label_looping_decode(m, enc, valid, st, off, sync_every=0)}
        ms = {}
        for name, run in runs.items():
            times = []
            for _ in range(args.reps):
                state = initial_decoder_state(m, b)
                t0 = time.perf_counter()
                run(state)
                times.append(time.perf_counter() - t0)
            ms[name] = 1000 * statistics.median(times)
        labels = sum(len(e.token_ids) for e in greedy_decode(m, enc, valid, initial_decoder_state(m, b), off))
        print(f"{b} streams x {t} frames, {labels} labels: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
