"""Peak memory of one fine-tuning step at real size (random weights), for docs/finetune.md:

    python -m onepass.training.memory --batch-seconds 8 --utterances 2 [--device cuda]

Builds the real Nemotron 3.5 architecture (onepass.bench.factory's preset: 24 layers, d 1024, vocabulary
13,088) with random weights, then runs what ``onepass finetune`` runs for one optimizer step: forward
under the chunked mask of the widest right context, the sliced-joint RNN-T loss, backward, AdamW.
Prints one JSON line: peak resident memory (CPU: getrusage; CUDA: max allocated), the step time, and
what the whole joint output would have needed.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from .data import collate
from .loss import DEFAULT_MAX_JOINT_ELEMENTS
from .objective import RNNTObjective, to_device


def joint_only(args) -> dict:
    from ..bench.factory import PRESETS
    from .loss import lattice_log_probs, rnnt_nll

    p = PRESETS[args.preset]
    B, T = args.utterances, int(args.batch_seconds / args.utterances * 100) // 8 + 1
    U, V, H = max(1, int(args.tokens_per_second * args.batch_seconds / args.utterances)), p.vocab, p.pred_hidden
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(H, V)
    enc = torch.randn(B, T, H, generator=g, requires_grad=True)
    dec = torch.randn(B, U + 1, H, generator=g, requires_grad=True)
    targets = torch.randint(0, V - 1, (B, U), generator=g)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    b, e = lattice_log_probs(lambda x, y: head(torch.relu(x + y)), enc, dec, targets, V - 1, V, args.max_joint_elements)
    rnnt_nll(b, e, torch.full((B,), T), torch.full((B,), U)).sum().backward()
    return {"preset": args.preset, "utterances": B, "encoder_frames": T, "labels": U, "vocab": V,
            "max_joint_elements": args.max_joint_elements, "joint_full_gb": round(B * T * (U + 1) * V * 4 / 1e9, 2),
            "peak_rss_increase_gb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1e6, 2),
            "seconds": round(time.perf_counter() - t0, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-seconds", type=float, default=8.0, help="audio in the batch (split evenly)")
    ap.add_argument("--utterances", type=int, default=2)
    ap.add_argument("--tokens-per-second", type=float, default=5.0, help="target tokens per second of audio")
    ap.add_argument("--preset", default="nemotron-3.5")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    ap.add_argument("--max-joint-elements", type=int, default=DEFAULT_MAX_JOINT_ELEMENTS)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--joint-only", action="store_true",
                    help="only the joint and the loss (forward and backward) on random encoder and prediction-net "
                         "outputs of the batch's shape: what slicing the joint saves")
    args = ap.parse_args()
    if args.joint_only:
        print(json.dumps(joint_only(args)))
        return
    from transformers import Nemotron3_5AsrForRNNT

    from ..bench.factory import PRESETS, hf_config

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = Nemotron3_5AsrForRNNT(hf_config(PRESETS[args.preset])).to(device).train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    frames = int(args.batch_seconds / args.utterances * 100)
    U = max(1, int(args.tokens_per_second * args.batch_seconds / args.utterances))
    V = int(model.config.vocab_size)
    g = torch.Generator().manual_seed(0)
    batch = collate([torch.randn(frames, 128, generator=g) - 9.0 for _ in range(args.utterances)],
                    [torch.randint(0, V - 1, (U,), generator=g).tolist() for _ in range(args.utterances)],
                    [0] * args.utterances)
    objective = RNNTObjective(args.max_joint_elements)
    r = max(PRESETS[args.preset].right_contexts)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(2):  # the second step has the optimizer state allocated: the steady-state peak
        t0 = time.perf_counter()
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if args.bf16 else torch.autocast("cpu", enabled=False)
        with ctx:
            out = objective(model, to_device(batch, device), r, 0)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    enc_frames = int(model._get_subsampling_output_length(torch.tensor([frames]))[0])
    full = args.utterances * enc_frames * (U + 1) * V * 4
    row = {"preset": args.preset, "parameters": params, "device": str(device), "bf16": args.bf16,
           "utterances": args.utterances, "batch_seconds": args.batch_seconds, "labels_per_utterance": U,
           "encoder_frames": enc_frames, "vocab": V, "loss": float(out.loss.detach()), "step_s": round(times[-1], 2),
           "joint_full_gb": round(full / 1e9, 2), "joint_slice_max_gb": round(args.max_joint_elements * 4 / 1e9, 3)}
    if device.type == "cuda":
        row["peak_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
    else:
        row["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
