"""Quick learnability probe: how fast does the demo encoder learn frame-level phoneme targets?

The demo conformer (config from demo_config.json, init as in train.py) with only a phoneme head, trained
on the phoneme-per-frame targets of train.py (``frame_phones``) for a few steps; prints the cross-entropy
every 25 steps (the phoneme prior is about 3.4 nats). Used in the third session to find the one-frame lag
of the causal subsampling (``shift=1`` moves the targets one frame later; train.py now labels that way,
so ``shift=0`` is the corrected labelling and ``shift=-1`` the old one).

    python -m tools.demo_model.probe --run /work/demo_corpus3/run13 [steps=150] [shift=0] [lr=2e-3] \
        [freeze=1] [r=13] [clip=1.0] [num_layers=5] [subsampling_channels=32] ...

``--run`` must hold train.py's feature cache (train_feats.pt) and tokenizer (demo_spm.model); the
manifest is CORPUS/train.jsonl with its "words" and "phones" fields. Any ModelConfig field can be set
as key=value.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from . import start as S
from . import train as T
from .build import build_model_and_processor
from .targets import frame_phones, phone_inventory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("/work/demo_corpus3"))
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--config", default=str(Path(__file__).resolve().parent / "demo_config.json"))
    ap.add_argument("options", nargs="*", help="key=value")
    args = ap.parse_args()
    opts = dict(a.split("=", 1) for a in args.options)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    random.seed(0)
    rows = [json.loads(x) for x in (args.corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    feats = torch.load(args.run / "train_feats.pt")
    cfg = T.load_config(args.config)
    for k, v in opts.items():
        if hasattr(cfg.model, k):
            setattr(cfg.model, k, type(getattr(cfg.model, k))(v))
    model, _ = build_model_and_processor(cfg.model, str(args.run / "demo_spm.model"))
    S.init_weights_(model, feats)
    if opts.get("freeze", "1") == "1":
        for m in model.encoder.subsampling.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.requires_grad_(False)
    names = phone_inventory(rows)
    index = {n: k for k, n in enumerate(names)}
    lengths = [f.shape[0] for f in feats]
    enc_n = model._get_subsampling_output_length(torch.tensor(lengths)).tolist()
    paths = [frame_phones(r.get("phones"), r.get("words"), int(n), index) for r, n in zip(rows, enc_n)]
    idx = [i for i, p in enumerate(paths) if p is not None]
    head = torch.nn.Linear(cfg.model.decoder_hidden_size, len(names))
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    lr, shift = float(opts.get("lr", 2e-3)), int(opts.get("shift", 0))
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=1e-3)
    model.train()
    t0, acc = time.time(), 0.0
    for step in range(1, int(opts.get("steps", 150)) + 1):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, step / 50)
        b = random.sample(idx, 12)
        tm = max(lengths[i] for i in b)
        x = torch.zeros(12, tm, cfg.model.num_mel_bins)
        mask = torch.zeros(12, tm, dtype=torch.long)
        for j, i in enumerate(b):
            x[j, : lengths[i]] = feats[i].float()
            mask[j, : lengths[i]] = 1
        r = int(opts["r"]) if "r" in opts else random.choice(cfg.model.right_contexts)
        pid = torch.tensor([S.PROMPT_SLOT[rows[i]["lang"]] for i in b])
        enc = model.get_audio_features(input_features=x, attention_mask=mask, prompt_ids=pid,
                                       num_lookahead_tokens=r).pooler_output
        out = head(enc)
        tgt = torch.full(out.shape[:2], -100, dtype=torch.long)
        for j, i in enumerate(b):
            p = paths[i][: out.shape[1]]
            if shift > 0:
                p = torch.cat([torch.full((shift,), -100), p[:-shift]])
            elif shift < 0:
                p = torch.cat([p[-shift:], torch.full((-shift,), -100)])
            tgt[j, : len(p)] = p
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), tgt.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, float(opts.get("clip", 1.0)))
        opt.step()
        acc += loss.item()
        if step % 25 == 0:
            print(f"step {step} phoneme CE {acc / 25:.3f} gnorm {float(gn):.2f} {time.time() - t0:.0f}s", flush=True)
            acc = 0.0


if __name__ == "__main__":
    main()
