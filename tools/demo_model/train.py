"""Train the onepass demo model (Nemotron 3.5 architecture at demo size): a recipe over onepass.training.

    python -m tools.demo_model.train --corpus /work/demo_corpus --out /work/demo_corpus/run \
        [--config cfg.json] [--total-steps N] [--resume]

Everything is seeded; the config (TrainConfig + ModelConfig) is written to OUT/config.json. The first run
trains the SentencePiece model on the training text and precomputes log-mel features (HF feature
extractor, cached in OUT/). onepass.training's loop runs the steps (its RNN-T loss, schedule, right-context
draw per batch, weight average, resume state in OUT/ckpt.pt every ``ckpt_every`` steps); this recipe adds
its corpus, initialisation, auxiliary heads (objective.py), batch mix (batches.py) and an HF directory in
OUT/hf_last (and OUT/hf_ema) at every checkpoint; ``--resume`` continues from OUT/ckpt.pt.
Cache-aware training: every batch draws its right context r from ``right_contexts`` and the encoder uses
the chunked_limited mask of (left 56, r). Every utterance gets its language prompt (en-US 0, es-ES 2,
de-DE 9 from the real prompt dictionary).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from onepass.training.loop import Hooks, LoopSettings, Trainer
from onepass.training.schedule import lr_at as schedule_lr
from onepass.training.settings import OptimSettings

from .batches import DemoBatches
from .build import ModelConfig, build_model_and_processor, save_hf, train_sentencepiece
from .objective import DemoObjective, audio_use
from .start import (PROMPT_SLOT, check_batch, check_idx_for, init_from_ckpt_, init_from_hf_, init_output_priors_,
                    init_weights_)
from .targets import frame_phones, frame_targets, phone_inventory

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
    freq_warp: float = 0.0  # per-utterance mel-axis warp by a factor in [1 - w, 1 + w] (VTLP-like: voices with
    # other vocal-tract lengths; the held-out voices are unseen ones); 0: off (no random draw either)
    freq_masks: int = 2  # SpecAugment-light
    freq_mask_width: int = 12
    time_masks: int = 2
    time_mask_width: int = 20  # mel frames
    ctc_weight: float = 0.3  # auxiliary CTC head on the projected encoder output (dropped at export)
    rnnt_start_step: int = 0  # CTC-only warm start: RNN-T weight 0 before this step, then a linear ramp
    rnnt_ramp_steps: int = 200
    pred_input_drop: float = 0.0  # prediction-net inputs replaced by the start symbol (blank) with this
    # probability, so that the prediction net alone cannot model the text (the "language-model only" trap)
    fastemit: float = 0.0  # FastEmit weight of the RNN-T loss (onepass.training.loss.fastemit)
    auto_prompt_prob: float = 0.0  # an utterance gets the "auto" slot (101) instead of its language's
    warm_subset: int = 0  # clips per language used alone for the first warm_subset_steps steps (curriculum:
    warm_subset_steps: int = 0  # a small set is learnt from the audio before the full set can collapse it)
    sortagrad_epochs: int = 0  # the first N epochs go through the batches from short to long clips
    prior_init: bool = True  # output biases (CTC head, joint head) start at the label / blank log-priors
    freeze_subsampling_convs: bool = True  # keep the 3 subsampling convs at their (normalised) random init
    # Frame-level warm start (third session), two terms on the encoder output, both 0 to disable:
    # align_weight: cross-entropy of the CTC head against a fixed CTC path built from espeak-ng's word times
    # (manifest field "words", see frame_targets); phone_weight: cross-entropy of a phoneme head (dropped at
    # export) against espeak-ng's phonemes (field "phones", see frame_phones). Both at full weight until
    # align_until, then a linear ramp down to align_floor times their weight over align_ramp steps.
    align_weight: float = 0.0
    align_until: int = 0
    align_ramp: int = 300
    align_floor: float = 0.0
    phone_weight: float = 0.0
    heads_only_steps: int = 0  # after --init-from an HF directory (which has no CTC or phoneme head): only the
    # fresh heads learn for this many steps (the model is frozen: no backward through it), so their first
    # random outputs do not push the trained encoder around; at heads_only_lr (constant), then the
    # schedule's lr re-warms over 100 steps
    heads_only_lr: float = 2e-3
    right_context_weights: list = field(default_factory=list)  # one weight per model.right_contexts entry:
    # the per-batch draw of r follows them (stage 8: more r=0 batches for the 80 ms chunk); empty: uniform
    # (the draw, and so the random stream, of the earlier stages)
    train_decoder_only: bool = False  # only the prediction net and the joint learn (the encoder, its prompt
    # MLP and projector are frozen and run without autograd): a cheap fine-tune of what the text history
    # decides (issue 35: when to stop), leaving what the encoder hears unchanged
    longform_prob: float = 0.0  # issue 35: this fraction of the batches are long-form examples (longform.py:
    # 1-6 clips of one language joined with pauses of silence or noise, sometimes joined late), built on the
    # fly from the corpus wavs; the other batches are the single clips as before. 0: off (no random draw)
    longform_max_frames: int = 3000  # mel frames of a long-form batch, padding included
    longform: dict = field(default_factory=dict)  # LongFormConfig fields
    focus: dict = field(default_factory=dict)  # {"weight": w, "words": {lang: [word, ...]}}: a clip with one of
    # its language's words (normalised: lowercase, no punctuation; hard_words.py finds them) is drawn w times as
    # often into long-form examples; empty: uniform draws
    ema_decay: float = 0.0  # > 0: also keep an exponential moving average of the weights (decay per step),
    # exported to OUT/hf_ema beside OUT/hf_last at every checkpoint; 0: none
    model: ModelConfig = field(default_factory=ModelConfig)


def load_config(path: str | None) -> TrainConfig:
    cfg = TrainConfig()
    if path:
        raw = json.loads(Path(path).read_text())
        model = raw.pop("model", {})
        cfg = TrainConfig(**raw, model=ModelConfig(**model))
    w = cfg.right_context_weights
    if w and (len(w) != len(cfg.model.right_contexts) or min(w) < 0 or sum(w) <= 0):
        raise ValueError(f"right_context_weights {w}: one non-negative weight per right context "
                         f"{cfg.model.right_contexts}, not all zero")
    return cfg


def read_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def features(fe, audio: np.ndarray) -> torch.Tensor:
    x = fe(audio, sampling_rate=16000, return_tensors="pt")
    return x["input_features"][0, : int(x["attention_mask"][0].sum())]


class LazyFeatures:
    """The log-mel features of the manifest's clips, computed from the wav when indexed (not kept): for a
    short fine-tuning run on a busy machine, where the feature pass over the whole corpus would take longer
    than the steps that use a part of it (``--lazy-features``). ``frames(i)`` is the length from the
    manifest's duration (within a frame of the features'), for bucketing."""

    def __init__(self, rows: list[dict], fe):
        self.rows, self.fe = rows, fe

    def __len__(self) -> int:
        return len(self.rows)

    def frames(self, i: int) -> int:
        return int(round(float(self.rows[i]["duration"]) * 16000)) // 160

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return features(self.fe, sf.read(self.rows[i]["audio_filepath"], dtype="float32")[0]).to(torch.float16)


def prepare(cfg: TrainConfig, corpus: Path, out: Path, lazy: bool = False):
    """SentencePiece + skeleton processor + feature cache (idempotent; ``lazy``: no cache, LazyFeatures)."""
    rows = read_manifest(corpus / "train.jsonl")
    spm_path = out / "demo_spm.model"
    if not spm_path.exists():
        train_sentencepiece([r["text"] for r in rows], out, cfg.model.vocab_size)
    _, processor = build_model_and_processor(cfg.model, str(spm_path))
    fe = processor.feature_extractor
    if lazy:
        return rows, str(spm_path), LazyFeatures(rows, fe)
    feats_path = out / "train_feats.pt"
    if not feats_path.exists():
        feats, t0 = [], time.time()
        for i, r in enumerate(rows):
            feats.append(features(fe, sf.read(r["audio_filepath"], dtype="float32")[0]).to(torch.float16).clone())
            if i % 2000 == 0:
                print(f"features {i}/{len(rows)} {time.time() - t0:.0f}s", flush=True)
        torch.save(feats, feats_path)
    return rows, str(spm_path), torch.load(feats_path)


class DemoHooks(Hooks):
    """The recipe's phases and outputs: the heads-only start after an HF init (the model frozen, the heads
    at heads_only_lr, then the schedule re-warms over 100 steps), HF directories and the audio-use check
    at every checkpoint, one log line per record."""

    def __init__(self, cfg: TrainConfig, out: Path, model, processor, objective: DemoObjective, source: DemoBatches,
                 check, heads_only_until: int):
        self.cfg, self.out, self.model, self.processor = cfg, out, model, processor
        self.objective, self.source, self.check = objective, source, check
        self.heads_only_until, self.rewarm_from = heads_only_until, None
        self.frozen: list[torch.nn.Parameter] = []
        self.t_start = time.time()

    def freeze_for_heads(self, step: int) -> None:
        if step < self.heads_only_until and not self.frozen:
            self.frozen = [p for p in self.model.parameters() if p.requires_grad]
            for p in self.frozen:
                p.requires_grad_(False)  # no backward through the model while only the heads learn

    def before_step(self, trainer: Trainer) -> None:
        self.source.step = trainer.step
        if self.frozen and trainer.step >= self.heads_only_until:
            for p in self.frozen:
                p.requires_grad_(True)
            self.frozen, self.rewarm_from = [], trainer.step
        self.objective.heads_only = bool(self.frozen)

    def lr(self, trainer: Trainer, scheduled: float) -> float:
        if self.frozen:
            return self.cfg.heads_only_lr
        return scheduled * (1.0 if self.rewarm_from is None else min(1.0, (trainer.step - self.rewarm_from + 1) / 100))

    def on_log(self, trainer: Trainer, record: dict) -> None:
        if "rnnt" not in record:
            return
        r = record
        print(f"step {r['step']} epoch {self.source.epoch} rnnt {r['rnnt']:.3f} ctc {r['ctc']:.3f} "
              f"align {r['align']:.3f} (w {r['w_align']:.2f}) phone {r['phone']:.3f} lr {r['lr']:.2e} "
              f"w_rnnt {r['w_rnnt']:.2f} gnorm {r['grad_norm']:.2f} {1 / max(1e-9, r['utterances_per_s']) :.2f}s/utt "
              f"elapsed {(time.time() - self.t_start) / 60:.1f}m", flush=True)

    def on_checkpoint(self, trainer: Trainer) -> None:
        device = next(self.model.parameters()).device
        self.model.eval()
        save_hf(self.model.cpu(), self.processor, self.out / "hf_last")
        if trainer.ema is not None:
            save_hf(trainer.ema.model_copy(self.model), self.processor, self.out / "hf_ema")
        self.model.to(device)  # the same Parameter objects: the optimizer state stays valid
        self.model.train()
        rn, c, rn2, c2 = audio_use(self.model, self.objective, self.check())
        print(f"checkpoint step {trainer.step} audio check (r=13, 12 clips): rnnt {rn:.3f} vs swapped {rn2:.3f}, "
              f"ctc {c:.3f} vs swapped {c2:.3f}", flush=True)

    def state_dict(self) -> dict:
        return {"heads_only_until": self.heads_only_until, "rewarm_from": self.rewarm_from}

    def load_state_dict(self, state: dict) -> None:
        self.heads_only_until = state.get("heads_only_until", 0)
        self.rewarm_from = state.get("rewarm_from")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("/work/demo_corpus"))
    ap.add_argument("--out", type=Path, default=Path("/work/demo_corpus/run"))
    ap.add_argument("--config", help="JSON with TrainConfig fields (model: ModelConfig fields)")
    ap.add_argument("--total-steps", type=int, help="override TrainConfig.total_steps")
    ap.add_argument("--max-steps", type=int, help="stop after this step (default: total_steps)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--pid-file", type=Path, help="write this process's PID here (so it can be paused)")
    ap.add_argument("--init-from", type=Path,
                    help="start from this run's ckpt.pt (weights and heads; same tokenizer, whose "
                         "demo_spm.model is copied) with a fresh optimizer and schedule: the later stages of "
                         "the shipped recipe. A config with wider FF blocks or more layers grows the "
                         "checkpoint (grow.py). Or an HF model directory (the shipped onepass/assets/demo): "
                         "its weights (grown the same way), fresh CTC and phoneme heads (see heads_only_steps); "
                         "OUT/demo_spm.model must exist then (rebuild_spm.py) and is checked against its "
                         "tokenizer.json")
    ap.add_argument("--device", default="cpu",
                    help="torch device for the model and the losses (cuda, cuda:1, ...); batches, "
                         "SpecAugment and the random draws stay on the CPU, so a run is the same recipe "
                         "on any device (default: %(default)s)")
    ap.add_argument("--lazy-features", action="store_true",
                    help="no feature cache: compute each clip's log-mels from its wav when a batch needs it "
                         "(a short run on a busy machine; the recipe is the same)")
    ap.add_argument("--deadline-min", type=float,
                    help="wall-clock budget in minutes for this run: the cosine decay is squeezed so that it "
                         "ends by then and training stops")
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    if args.pid_file:
        args.pid_file.write_text(f"{os.getpid()}\n")
    ckpt_path = args.out / "ckpt.pt"
    resume = args.resume and ckpt_path.exists()
    cfg = load_config(str(args.out / "config.json") if resume else args.config)
    if args.total_steps:
        cfg.total_steps = args.total_steps
    (args.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    init_hf = args.init_from is not None and args.init_from.is_dir() and not resume
    if init_hf and not (args.out / "demo_spm.model").exists():
        raise SystemExit(f"--init-from {args.init_from} is an HF directory: first rebuild its SentencePiece "
                         f"model into {args.out} (python -m tools.demo_model.rebuild_spm --out {args.out})")
    if args.init_from and not (args.out / "demo_spm.model").exists():
        for name in ("demo_spm.model", "demo_spm.vocab"):
            shutil.copy(args.init_from.parent / name, args.out / name)
    rows, spm_path, feats = prepare(cfg, args.corpus, args.out, args.lazy_features)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_path)
    labels = [sp.encode(r["text"]) for r in rows]
    prompts = [PROMPT_SLOT[r["lang"]] for r in rows]
    lengths = [feats.frames(i) for i in range(len(feats))] if args.lazy_features else [f.shape[0] for f in feats]
    model, processor = build_model_and_processor(cfg.model, spm_path)
    blank = model.config.blank_token_id
    enc_n = model._get_subsampling_output_length(torch.tensor(lengths)).tolist()  # encoder frames per clip
    paths: list[torch.Tensor | None] = [None] * len(rows)
    if cfg.align_weight:
        paths = [frame_targets(sp.encode(r["text"], out_type=str), r.get("words"), int(n), blank, lab)
                 for r, n, lab in zip(rows, enc_n, labels)]
        print(f"frame paths for {sum(p is not None for p in paths)} of {len(rows)} clips", flush=True)
    phone_names = phone_inventory(rows) if cfg.phone_weight else []
    phone_paths: list[torch.Tensor | None] = [None] * len(rows)
    phone_head = None
    if cfg.phone_weight:
        index = {n: k for k, n in enumerate(phone_names)}
        phone_paths = [frame_phones(r.get("phones"), r.get("words"), int(n), index) for r, n in zip(rows, enc_n)]
        phone_head = torch.nn.Linear(cfg.model.decoder_hidden_size, len(phone_names))
        (args.out / "phones.json").write_text(json.dumps(phone_names))
        print(f"{len(phone_names)} phoneme classes, targets for {sum(p is not None for p in phone_paths)} clips",
              flush=True)
    print(f"params {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M, {len(rows)} utterances, "
          f"{sum(lengths) / 360000:.2f} h, mean {np.mean([len(x) for x in labels]):.1f} labels", flush=True)
    fresh = not resume and not args.init_from
    if fresh:
        init_weights_(model, feats)
    ctc_head = torch.nn.Linear(cfg.model.decoder_hidden_size, model.config.vocab_size) if cfg.ctc_weight else None
    if fresh and cfg.prior_init:
        init_output_priors_(model, ctc_head, labels, enc_n)
    if cfg.freeze_subsampling_convs:
        # Adam drove these ReLU convs dead in two runs (constant output, audio ignored); random conv
        # features keep the information and the trainable projection after them does the rest.
        for mod in model.encoder.subsampling.modules():
            if isinstance(mod, torch.nn.Conv2d):
                mod.requires_grad_(False)
    if cfg.train_decoder_only:
        for name, p in model.named_parameters():
            if not name.startswith(("decoder.", "joint.")):
                p.requires_grad_(False)
    if init_hf:
        init_from_hf_(args.init_from, model, spm_path, cfg.heads_only_steps, rows, feats, prompts)
    elif args.init_from and not resume:
        init_from_ckpt_(args.init_from, model, ctc_head, phone_head, phone_names, rows, feats, prompts, spm_path)
    device = torch.device(args.device)
    model.to(device)
    objective = DemoObjective(cfg, ctc_head, phone_head, cfg.seed)
    for head in (ctc_head, phone_head):
        if head is not None:
            head.to(device)
    params = [p for p in model.parameters() if p.requires_grad] + objective.parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    fe = processor.feature_extractor
    source = DemoBatches(cfg, rows, feats, labels, prompts, sp.encode, lambda audio: features(fe, audio),
                         paths, phone_paths,
                         lambda t: int(model._get_subsampling_output_length(torch.tensor([t]))[0]))
    check_idx = check_idx_for(rows)
    y_check = [labels[i] for i in check_idx]

    def check():
        from onepass.training.data import collate

        x, mask, pid = check_batch(feats, prompts, check_idx)
        return collate([x[j, : int(mask[j].sum())] for j in range(len(check_idx))], y_check, pid.tolist())

    hooks = DemoHooks(cfg, args.out, model, processor, objective, source, check,
                      cfg.heads_only_steps if init_hf else 0)
    optim = OptimSettings(lr=cfg.lr, warmup_steps=cfg.warmup_steps, lr_floor=cfg.lr_floor, schedule="cosine")
    loop = LoopSettings(
        total_steps=cfg.total_steps, right_contexts=tuple(cfg.model.right_contexts),
        right_context_weights=tuple(cfg.right_context_weights), grad_clip=cfg.grad_clip,
        checkpoint_every=cfg.ckpt_every, validate_every=0, log_every=cfg.log_every, ema_decay=cfg.ema_decay,
        max_steps=args.max_steps, deadline_s=None if args.deadline_min is None else 60 * args.deadline_min,
        seed=cfg.seed, progress=False, fixed_embedding_rows=(blank,))
    trainer = Trainer(model, objective, source, opt, lambda step, tf: schedule_lr(step, cfg.total_steps, optim, tf),
                      loop, ckpt_path, hooks, args.out / "log.jsonl", device)
    if resume:
        trainer.load_state_dict(torch.load(ckpt_path, weights_only=False, map_location=device))
        print(f"resumed at step {trainer.step}", flush=True)
    hooks.freeze_for_heads(trainer.step)
    trainer.run()


if __name__ == "__main__":
    main()
