"""Train the onepass demo model (Nemotron 3.5 architecture at demo size) with a pure-PyTorch RNN-T loss.

    python tools/demo_model/train.py --corpus /work/demo_corpus --out /work/demo_corpus/run \
        [--config cfg.json] [--total-steps N] [--resume]

Everything is seeded; the config (TrainConfig + ModelConfig) is written to OUT/config.json. The first run
trains the SentencePiece model on the training text and precomputes log-mel features (HF feature
extractor, cached in OUT/). A checkpoint (model, optimizer, step, RNG) goes to OUT/ckpt.pt every
``ckpt_every`` steps and an HF directory to OUT/hf_last; ``--resume`` continues from OUT/ckpt.pt.
Cache-aware training: every batch draws its right context r from ``right_contexts`` and the encoder uses
the chunked_limited mask of (left 56, r). Every utterance gets its language prompt (en-US 0, es-ES 2,
de-DE 9 from the real prompt dictionary).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import ModelConfig, build_model_and_processor, save_hf, train_sentencepiece  # noqa: E402
from rnnt_loss import rnnt_loss  # noqa: E402

PROMPT_SLOT = {"en-US": 0, "es-ES": 2, "de-DE": 9}


@dataclass
class TrainConfig:
    seed: int = 0
    threads: int = 2
    max_frames_per_batch: int = 6000  # mel frames (10 ms) summed over the batch, padding included
    max_batch: int = 32
    lr: float = 2e-3  # AdamW peak
    weight_decay: float = 1e-3
    warmup_steps: int = 300
    total_steps: int = 3000  # cosine decay to lr_floor * lr at this step
    lr_floor: float = 0.05
    grad_clip: float = 1.0
    ckpt_every: int = 100
    log_every: int = 10
    freq_masks: int = 2  # SpecAugment-light
    freq_mask_width: int = 12
    time_masks: int = 2
    time_mask_width: int = 20  # mel frames
    model: ModelConfig = field(default_factory=ModelConfig)


def load_config(path: str | None) -> TrainConfig:
    cfg = TrainConfig()
    if path:
        raw = json.loads(Path(path).read_text())
        model = raw.pop("model", {})
        cfg = TrainConfig(**raw, model=ModelConfig(**model))
    return cfg


def read_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def prepare(cfg: TrainConfig, corpus: Path, out: Path):
    """SentencePiece + skeleton processor + feature cache (idempotent)."""
    rows = read_manifest(corpus / "train.jsonl")
    spm_path = out / "demo_spm.model"
    if not spm_path.exists():
        train_sentencepiece([r["text"] for r in rows], out, cfg.model.vocab_size)
    feats_path = out / "train_feats.pt"
    if not feats_path.exists():
        _, processor = build_model_and_processor(cfg.model, str(spm_path))
        fe = processor.feature_extractor
        feats = []
        t0 = time.time()
        for i, r in enumerate(rows):
            audio, sr = sf.read(r["audio_filepath"], dtype="float32")
            x = fe(audio, sampling_rate=sr, return_tensors="pt")
            n = int(x["attention_mask"][0].sum())
            feats.append(x["input_features"][0, :n].to(torch.float16).clone())
            if i % 2000 == 0:
                print(f"features {i}/{len(rows)} {time.time() - t0:.0f}s", flush=True)
        torch.save(feats, feats_path)
    return rows, str(spm_path), torch.load(feats_path)


def make_batches(lengths: list[int], cfg: TrainConfig, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches (sorted with a little jitter), shuffled."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i] + rng.uniform(0, 40))
    batches, cur, cur_max = [], [], 0
    for i in order:
        m = max(cur_max, lengths[i])
        if cur and (m * (len(cur) + 1) > cfg.max_frames_per_batch or len(cur) >= cfg.max_batch):
            batches.append(cur)
            cur, m = [], lengths[i]
        cur.append(i)
        cur_max = m
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    B, T, F = x.shape
    x = x.clone()
    for b in range(B):
        fill = x[b, : lengths[b]].mean()
        for _ in range(cfg.freq_masks):
            w = int(torch.randint(0, cfg.freq_mask_width + 1, (1,), generator=g))
            f0 = int(torch.randint(0, F - w + 1, (1,), generator=g))
            x[b, :, f0: f0 + w] = fill
        for _ in range(cfg.time_masks):
            w = int(torch.randint(0, min(cfg.time_mask_width, int(lengths[b]) // 10) + 1, (1,), generator=g))
            t0 = int(torch.randint(0, max(1, int(lengths[b]) - w), (1,), generator=g))
            x[b, t0: t0 + w] = fill
    x[torch.arange(T)[None, :] >= lengths[:, None]] = 0.0
    return x


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * p)))


def rnnt_forward(model, feats, mask, prompt_ids, targets, target_lengths, r: int) -> tuple[torch.Tensor, int]:
    """Mean-volume RNN-T loss (sum of NLLs / number of labels) for one batch."""
    blank = model.config.blank_token_id
    enc = model.get_audio_features(input_features=feats, attention_mask=mask, prompt_ids=prompt_ids,
                                   num_lookahead_tokens=r).pooler_output  # [B, T', H]
    enc_len = model.encoder._get_output_attention_mask(mask, target_length=enc.shape[1]).sum(-1)
    dec_in = torch.cat([torch.full((targets.shape[0], 1), blank, dtype=torch.long), targets], dim=1)
    dec = model.decoder(dec_in)  # [B, U+1, H]
    logits = model.joint(decoder_hidden_states=dec[:, None, :, :], encoder_hidden_states=enc[:, :, None, :])
    nll = rnnt_loss(logits, targets, enc_len, target_lengths, blank)
    return nll.sum() / target_lengths.sum(), int(enc_len.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("/work/demo_corpus"))
    ap.add_argument("--out", type=Path, default=Path("/work/demo_corpus/run"))
    ap.add_argument("--config", help="JSON with TrainConfig fields (model: ModelConfig fields)")
    ap.add_argument("--total-steps", type=int, help="override TrainConfig.total_steps")
    ap.add_argument("--max-steps", type=int, help="stop after this step (default: total_steps)")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.out / "ckpt.pt"
    if args.resume and ckpt_path.exists():
        cfg = load_config(str(args.out / "config.json"))
    else:
        cfg = load_config(args.config)
    if args.total_steps:
        cfg.total_steps = args.total_steps
    (args.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    rows, spm_path, feats = prepare(cfg, args.corpus, args.out)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_path)
    labels = [sp.encode(r["text"]) for r in rows]
    prompts = [PROMPT_SLOT[r["lang"]] for r in rows]
    lengths = [f.shape[0] for f in feats]
    model, processor = build_model_and_processor(cfg.model, spm_path)
    print(f"params {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M, {len(rows)} utterances, "
          f"{sum(lengths) / 360000:.2f} h, mean {np.mean([len(x) for x in labels]):.1f} labels", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    step, epoch, batches = 0, 0, []
    rng = random.Random(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    if args.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, epoch = ck["step"], ck["epoch"]
        rng.setstate(ck["rng"])
        batches = ck.get("batches", [])
        g.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed at step {step}", flush=True)
    blank = model.config.blank_token_id
    max_steps = args.max_steps or cfg.total_steps
    model.train()
    t_start, t_log, loss_acc, n_acc = time.time(), time.time(), 0.0, 0
    while step < max_steps:
        if not batches:
            batches = make_batches(lengths, cfg, random.Random(cfg.seed * 7919 + epoch))
            epoch += 1
        b = batches.pop(0)
        B = len(b)
        T = max(lengths[i] for i in b)
        x = torch.zeros(B, T, cfg.model.num_mel_bins)
        mask = torch.zeros(B, T, dtype=torch.long)
        for j, i in enumerate(b):
            x[j, : lengths[i]] = feats[i].float()
            mask[j, : lengths[i]] = 1
        xl = mask.sum(-1)
        x = spec_augment(x, xl, cfg, g)
        U = max(len(labels[i]) for i in b)
        y = torch.zeros(B, U, dtype=torch.long)
        for j, i in enumerate(b):
            y[j, : len(labels[i])] = torch.tensor(labels[i])
        yl = torch.tensor([len(labels[i]) for i in b])
        pid = torch.tensor([prompts[i] for i in b])
        r = cfg.model.right_contexts[int(torch.randint(len(cfg.model.right_contexts), (1,), generator=g))]
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step, cfg)
        loss, _ = rnnt_forward(model, x, mask, pid, y, yl, r)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        model.decoder.embedding.weight.grad[blank].zero_()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if torch.isfinite(gn):
            opt.step()
        step += 1
        loss_acc += float(loss)
        n_acc += 1
        if step % cfg.log_every == 0:
            dt = time.time() - t_log
            print(f"step {step} epoch {epoch} loss {loss_acc / n_acc:.3f} lr {lr_at(step, cfg):.2e} "
                  f"gnorm {float(gn):.2f} {dt / n_acc:.2f}s/step elapsed {(time.time() - t_start) / 60:.1f}m",
                  flush=True)
            t_log, loss_acc, n_acc = time.time(), 0.0, 0
        if step % cfg.ckpt_every == 0 or step >= max_steps:
            tmp = args.out / "ckpt.pt.tmp"
            torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, epoch=epoch, batches=batches,
                            rng=rng.getstate(), gen=g.get_state(), torch_rng=torch.get_rng_state()), tmp)
            os.replace(tmp, ckpt_path)
            model.eval()
            save_hf(model, processor, args.out / "hf_last")
            model.train()
            print(f"checkpoint step {step}", flush=True)


if __name__ == "__main__":
    main()
