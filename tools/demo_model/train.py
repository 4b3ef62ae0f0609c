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
import copy
import json
import math
import os
import random
import shutil
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
from start import (AUTO_SLOT, PROMPT_SLOT, Start, check_batch, check_idx_for, init_from_ckpt_,  # noqa: E402
                   init_from_hf_, init_output_priors_, init_weights_, resume_)
from longform import LongFormConfig, build_example, draw_clips  # noqa: E402
from targets import frame_phones, frame_targets, pad_frame_targets, phone_inventory  # noqa: E402

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
    ema_decay: float = 0.0  # > 0: also keep an exponential moving average of the weights (decay per step),
    # exported to OUT/hf_ema beside OUT/hf_last at every checkpoint; 0: none
    model: ModelConfig = field(default_factory=ModelConfig)


def draw_right_context(cfg: TrainConfig, g: torch.Generator) -> int:
    """The batch's right context: uniform over model.right_contexts, or by right_context_weights."""
    rcs = cfg.model.right_contexts
    if not cfg.right_context_weights:
        return rcs[int(torch.randint(len(rcs), (1,), generator=g))]
    w = torch.tensor(cfg.right_context_weights, dtype=torch.float64)
    return rcs[int(torch.multinomial(w, 1, generator=g))]


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
        audio, sr = sf.read(self.rows[i]["audio_filepath"], dtype="float32")
        x = self.fe(audio, sampling_rate=sr, return_tensors="pt")
        return x["input_features"][0, : int(x["attention_mask"][0].sum())].to(torch.float16)


def prepare(cfg: TrainConfig, corpus: Path, out: Path, lazy: bool = False):
    """SentencePiece + skeleton processor + feature cache (idempotent; ``lazy``: no cache, LazyFeatures)."""
    rows = read_manifest(corpus / "train.jsonl")
    spm_path = out / "demo_spm.model"
    if not spm_path.exists():
        train_sentencepiece([r["text"] for r in rows], out, cfg.model.vocab_size)
    if lazy:
        _, processor = build_model_and_processor(cfg.model, str(spm_path))
        return rows, str(spm_path), LazyFeatures(rows, processor.feature_extractor)
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


def make_batches(lengths: list[int], cfg: TrainConfig, rng: random.Random, shuffle: bool = True) -> list[list[int]]:
    """Length-bucketed batches (sorted with a little jitter), shuffled (else short to long)."""
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
    if shuffle:
        rng.shuffle(batches)
    return batches


def warp_mel_axis(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """[B, T, F] features with utterance b's mel axis scaled by alpha[b]: output bin f reads input bin
    f / alpha (linear interpolation, clamped at the top bin), so alpha > 1 moves formants up."""
    B, T, F = x.shape
    src = (torch.arange(F, dtype=torch.float32)[None, :] / alpha[:, None]).clamp(0, F - 1)  # [B, F]
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=F - 1)
    w = (src - lo)[:, None, :]
    return (x.gather(2, lo[:, None, :].expand(B, T, F)) * (1 - w)
            + x.gather(2, hi[:, None, :].expand(B, T, F)) * w)


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


def progress(step: int, cfg: TrainConfig) -> float:
    """Fraction of the cosine decay done at ``step`` (0 during warmup)."""
    return min(1.0, max(0.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps)))


class WeightAverage:
    """Exponential moving average of a model's floating-point weights and buffers (integer buffers are
    copied), updated in place after each optimizer step."""

    def __init__(self, model: torch.nn.Module, decay: float, state: dict[str, torch.Tensor] | None = None):
        self.decay = decay
        live = model.state_dict()
        self.state = {k: (state[k] if state is not None else v).detach().clone().to(v.device)
                      for k, v in live.items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():  # fresh views: model.cpu() / .to() swap the storage
            avg = self.state[k]
            if avg.is_floating_point():
                avg.lerp_(v, 1.0 - self.decay)
            else:
                avg.copy_(v)

    def model_copy(self, model: torch.nn.Module) -> torch.nn.Module:
        out = copy.deepcopy(model).cpu()
        out.load_state_dict(self.state)
        return out.eval()


def lr_at(step: int, cfg: TrainConfig, p: float | None = None) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = progress(step, cfg) if p is None else p
    return cfg.lr * (cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * p)))


def rnnt_forward(model, feats, mask, prompt_ids, targets, target_lengths, r: int, ctc_head=None, with_rnnt=True,
                 pred_inputs=None, align=None, phone_head=None, phone_tgt=None, encoder_grad=True):
    """(mean-volume RNN-T loss or 0, mean-volume CTC loss or 0, frame CE or 0, phoneme CE or 0) for one
    batch (NLL sums / number of labels; the frame CEs are means over the frames of the clips that have a
    target in ``align`` / ``phone_tgt`` [B, T'], -100 elsewhere)."""
    blank = model.config.blank_token_id
    dev = model.decoder.embedding.weight.device  # batches are built on the CPU; the model may be elsewhere
    feats, mask, prompt_ids, targets, target_lengths, pred_inputs, align, phone_tgt = (
        None if t is None else t.to(dev)
        for t in (feats, mask, prompt_ids, targets, target_lengths, pred_inputs, align, phone_tgt))
    with torch.set_grad_enabled(encoder_grad and torch.is_grad_enabled()):
        enc = model.get_audio_features(input_features=feats, attention_mask=mask, prompt_ids=prompt_ids,
                                       num_lookahead_tokens=r).pooler_output  # [B, T', H]
    enc_len = model.encoder._get_output_attention_mask(mask, target_length=enc.shape[1]).sum(-1)
    nll = torch.zeros(1, device=dev)
    if with_rnnt:
        dec_in = torch.cat([torch.full((targets.shape[0], 1), blank, dtype=torch.long, device=dev),
                            targets if pred_inputs is None else pred_inputs], dim=1)
        dec = model.decoder(dec_in)  # [B, U+1, H]
        logits = model.joint(decoder_hidden_states=dec[:, None, :, :], encoder_hidden_states=enc[:, :, None, :])
        nll = rnnt_loss(logits, targets, enc_len, target_lengths, blank)
    ctc = torch.zeros((), device=dev)
    ce = torch.zeros((), device=dev)
    if ctc_head is not None:
        head = ctc_head(enc)
        lp = head.log_softmax(-1).transpose(0, 1)  # [T', B, V]
        ctc = torch.nn.functional.ctc_loss(lp, targets, enc_len, target_lengths, blank=blank,
                                           reduction="sum", zero_infinity=True) / target_lengths.sum()
        if align is not None and bool((align >= 0).any()):
            ce = torch.nn.functional.cross_entropy(head[:, : align.shape[1]].reshape(-1, head.shape[-1]),
                                                   align[:, : head.shape[1]].reshape(-1), ignore_index=-100)
    pce = torch.zeros((), device=dev)
    if phone_head is not None and phone_tgt is not None and bool((phone_tgt >= 0).any()):
        ph = phone_head(enc)
        pce = torch.nn.functional.cross_entropy(ph[:, : phone_tgt.shape[1]].reshape(-1, ph.shape[-1]),
                                                phone_tgt[:, : ph.shape[1]].reshape(-1), ignore_index=-100)
    return nll.sum() / target_lengths.sum(), ctc, ce, pce


def warm_start_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of align_weight and phone_weight at ``step``: 1 until align_until, then down to align_floor."""
    if step < cfg.align_until:
        return 1.0
    f = min(1.0, (step - cfg.align_until) / max(1, cfg.align_ramp))
    return 1.0 - f * (1.0 - cfg.align_floor)


def rnnt_weight(step: int, cfg: TrainConfig) -> float:
    if step < cfg.rnnt_start_step:
        return 0.0
    return min(1.0, (step - cfg.rnnt_start_step + 1) / max(1, cfg.rnnt_ramp_steps)) if cfg.rnnt_start_step else 1.0


def audio_use(model, ctc_head, feats, labels, prompts, idx: list[int]) -> tuple[float, float, float, float]:
    """(RNN-T, CTC) loss of clips ``idx`` with their own audio and with each clip's audio rolled to the next
    clip (no grad, eval mode, r = 13). The swapped losses must be clearly higher once the audio is used."""
    x, mask, pid = check_batch(feats, prompts, idx)
    y = torch.nn.utils.rnn.pad_sequence([torch.tensor(labels[i]) for i in idx], batch_first=True)
    yl = torch.tensor([len(labels[i]) for i in idx])
    perm = torch.roll(torch.arange(len(idx)), 1)
    was = model.training
    model.eval()
    with torch.no_grad():
        rn, ctc, _, _ = rnnt_forward(model, x, mask, pid, y, yl, 13, ctc_head)
        rn2, ctc2, _, _ = rnnt_forward(model, x[perm], mask[perm], pid, y, yl, 13, ctc_head)
    model.train(was)
    return float(rn), float(ctc), float(rn2), float(ctc2)


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
    ap.add_argument("--reinit-subsampling", action="store_true",
                    help="with --resume: re-initialise the subsampling stack (see init_subsampling_) and the "
                         "optimizer (used once in the shipped run, whose first 1,600 steps had a dead subsampling)")
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
                         "ends by then (progress = max(step progress, time progress)) and training stops")
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    if args.pid_file:
        args.pid_file.write_text(f"{os.getpid()}\n")
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

    init_hf = args.init_from is not None and args.init_from.is_dir()
    if init_hf and not (args.out / "demo_spm.model").exists():
        raise SystemExit(f"--init-from {args.init_from} is an HF directory: first rebuild its SentencePiece "
                         f"model into {args.out} (python tools/demo_model/rebuild_spm.py --out {args.out})")
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
    paths: list[torch.Tensor | None] = [None] * len(rows)
    enc_n = model._get_subsampling_output_length(torch.tensor(lengths)).tolist()  # encoder frames per clip
    if cfg.align_weight:
        paths = [frame_targets(sp.encode(r["text"], out_type=str), r.get("words"), int(n),
                               model.config.blank_token_id, lab)
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
    if not args.resume and not args.init_from:
        init_weights_(model, feats)
    ctc_head = torch.nn.Linear(cfg.model.decoder_hidden_size, model.config.vocab_size) if cfg.ctc_weight else None
    if not args.resume and not args.init_from and cfg.prior_init:
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
    device = torch.device(args.device)
    model.to(device)
    for head in (ctc_head, phone_head):
        if head is not None:
            head.to(device)
    params = [p for p in model.parameters() if p.requires_grad] + (list(ctc_head.parameters()) if ctc_head is not None else [])
    params += list(phone_head.parameters()) if phone_head is not None else []
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    rng = random.Random(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    start = Start()
    if args.resume and ckpt_path.exists():
        start = resume_(ckpt_path, model, ctc_head, phone_head, opt, rng, g, feats, args.reinit_subsampling)
    elif init_hf:
        init_from_hf_(args.init_from, model, spm_path, cfg.heads_only_steps, rows, feats, prompts)
    elif args.init_from:
        init_from_ckpt_(args.init_from, model, ctc_head, phone_head, phone_names, rows, feats, prompts, spm_path)
    step, epoch, batches, rewarm_from = start.step, start.epoch, start.batches, start.rewarm_from
    ema = WeightAverage(model, cfg.ema_decay, start.ema) if cfg.ema_decay else None
    blank = model.config.blank_token_id
    max_steps = args.max_steps or cfg.total_steps
    p0, t0 = progress(step, cfg), time.time()
    heads_only_until = step + cfg.heads_only_steps if init_hf else step
    frozen = [p for p in model.parameters() if p.requires_grad] if step < heads_only_until else []
    for p in frozen:
        p.requires_grad_(False)  # no backward through the model while only the heads learn

    def current_progress() -> float:
        p = progress(step, cfg)
        if args.deadline_min:
            p = max(p, p0 + (1 - p0) * (time.time() - t0) / (60 * args.deadline_min))
        return min(1.0, p)

    subset = [i for lang in PROMPT_SLOT for i in [j for j, r in enumerate(rows) if r["lang"] == lang][: cfg.warm_subset]]
    in_subset = False
    check_idx = check_idx_for(rows)
    lf_cfg = LongFormConfig(**cfg.longform)
    lf_rng = random.Random(cfg.seed * 1_000_003 + step)  # its own stream: the single-clip draws stay as before
    by_lang: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if len(labels[i]):
            by_lang.setdefault(row["lang"], []).append(i)
    durations = [float(row["duration"]) for row in rows]
    fe = processor.feature_extractor

    def longform_batch():
        """Long-form examples until the batch would pass longform_max_frames (at least one)."""
        out_f, out_l, out_p = [], [], []
        while len(out_f) < cfg.max_batch:
            idx = draw_clips(by_lang, durations, lf_rng, lf_cfg)
            clips = [(sf.read(rows[i]["audio_filepath"], dtype="float32")[0], rows[i]["text"], rows[i].get("words"))
                     for i in idx]
            audio, text = build_example(clips, lf_rng, lf_cfg)
            fx = fe(audio, sampling_rate=16000, return_tensors="pt")
            f = fx["input_features"][0, : int(fx["attention_mask"][0].sum())]
            if f.shape[0] > cfg.longform_max_frames:
                continue  # rare (several long pauses): never cut the audio of a target
            if out_f and max(f.shape[0], max(t.shape[0] for t in out_f)) * (len(out_f) + 1) > cfg.longform_max_frames:
                break
            out_f.append(f)
            out_l.append(sp.encode(text))
            out_p.append(PROMPT_SLOT[rows[idx[0]]["lang"]])
        return out_f, out_l, out_p

    model.train()
    t_start, t_log, loss_acc, ctc_acc, ce_acc, pce_acc, n_acc = time.time(), time.time(), 0.0, 0.0, 0.0, 0.0, 0
    done = False
    while not done:
        if frozen and step >= heads_only_until:
            for p in frozen:
                p.requires_grad_(True)
            frozen, rewarm_from = [], step
        if step == cfg.warm_subset_steps and cfg.warm_subset and in_subset:
            batches, in_subset = [], False  # curriculum over: the full training set from here on
        if not batches:
            in_subset = step < cfg.warm_subset_steps and cfg.warm_subset > 0
            pool = subset if in_subset else list(range(len(lengths)))
            batches = [[pool[j] for j in bb] for bb in
                       make_batches([lengths[i] for i in pool], cfg, random.Random(cfg.seed * 7919 + epoch),
                                    shuffle=in_subset or epoch >= cfg.sortagrad_epochs)]
            epoch += 1
        if cfg.longform_prob and lf_rng.random() < cfg.longform_prob:
            b_feats, b_labels, b_prompts = longform_batch()
            b_paths = b_phones = [None] * len(b_feats)
        else:
            b = batches.pop(0)
            b_feats, b_labels, b_prompts = [feats[i] for i in b], [labels[i] for i in b], [prompts[i] for i in b]
            b_paths, b_phones = [paths[i] for i in b], [phone_paths[i] for i in b]
        B = len(b_feats)
        b_len = [f.shape[0] for f in b_feats]
        T = max(b_len)
        x = torch.zeros(B, T, cfg.model.num_mel_bins)
        mask = torch.zeros(B, T, dtype=torch.long)
        for j in range(B):
            x[j, : b_len[j]] = b_feats[j].float()
            mask[j, : b_len[j]] = 1
        xl = mask.sum(-1)
        if cfg.freq_warp:
            x = warp_mel_axis(x, 1 + (2 * torch.rand(B, generator=g) - 1) * cfg.freq_warp)
        x = spec_augment(x, xl, cfg, g)
        U = max(len(lab) for lab in b_labels)
        y = torch.zeros(B, U, dtype=torch.long)
        for j, lab in enumerate(b_labels):
            y[j, : len(lab)] = torch.tensor(lab)
        yl = torch.tensor([len(lab) for lab in b_labels])
        warm = warm_start_factor(step, cfg)
        w_align, w_phone = cfg.align_weight * warm, cfg.phone_weight * warm
        Tp = int(model._get_subsampling_output_length(torch.tensor([T]))[0])
        align = pad_frame_targets(b_paths, list(range(B)), Tp) if w_align > 0 else None
        phone_tgt = (pad_frame_targets(b_phones, list(range(B)), Tp)
                     if phone_head is not None and w_phone > 0 else None)
        pid = torch.tensor(b_prompts)
        if cfg.auto_prompt_prob:
            pid = torch.where(torch.rand(B, generator=g) < cfg.auto_prompt_prob, torch.full_like(pid, AUTO_SLOT), pid)
        r = draw_right_context(cfg, g)
        for pg in opt.param_groups:
            pg["lr"] = cfg.heads_only_lr if frozen else lr_at(step, cfg, current_progress()) * (
                1.0 if rewarm_from is None else min(1.0, (step - rewarm_from + 1) / 100))
        w_rnnt = 0.0 if frozen else rnnt_weight(step, cfg)
        y_in = None
        if cfg.pred_input_drop:
            y_in = torch.where(torch.rand(y.shape, generator=g) < cfg.pred_input_drop, torch.full_like(y, blank), y)
        rnnt, ctc, ce, pce = rnnt_forward(model, x, mask, pid, y, yl, r, ctc_head, with_rnnt=w_rnnt > 0,
                                          pred_inputs=y_in, align=align, phone_head=phone_head,
                                          phone_tgt=phone_tgt, encoder_grad=not cfg.train_decoder_only)
        loss = w_rnnt * rnnt + cfg.ctc_weight * ctc + w_align * ce + w_phone * pce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if model.decoder.embedding.weight.grad is not None:
            model.decoder.embedding.weight.grad[blank].zero_()
        gn = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        if torch.isfinite(gn):
            opt.step()
            if ema is not None and not frozen:
                ema.update(model)
        step += 1
        done = step >= max_steps or (args.deadline_min is not None and current_progress() >= 1.0)
        loss_acc += rnnt.item()
        ctc_acc += ctc.item()
        ce_acc += ce.item()
        pce_acc += pce.item()
        n_acc += 1
        if step % cfg.log_every == 0:
            dt = time.time() - t_log
            print(f"step {step} epoch {epoch} rnnt {loss_acc / n_acc:.3f} ctc {ctc_acc / n_acc:.3f} "
                  f"align {ce_acc / n_acc:.3f} (w {w_align:.2f}) phone {pce_acc / n_acc:.3f} lr {opt.param_groups[0]['lr']:.2e} w_rnnt {w_rnnt:.2f} "
                  f"gnorm {float(gn):.2f} {dt / n_acc:.2f}s/step elapsed {(time.time() - t_start) / 60:.1f}m",
                  flush=True)
            t_log, loss_acc, ctc_acc, ce_acc, pce_acc, n_acc = time.time(), 0.0, 0.0, 0.0, 0.0, 0
        if step % cfg.ckpt_every == 0 or done:
            tmp = args.out / "ckpt.pt.tmp"
            extra = {"ctc": ctc_head.state_dict()} if ctc_head is not None else {}
            if phone_head is not None:
                extra["phone"] = phone_head.state_dict()
            if ema is not None:
                extra["ema"] = ema.state
            torch.save(dict(model=model.state_dict(), **extra, opt=opt.state_dict(), step=step, epoch=epoch, batches=batches,
                            rng=rng.getstate(), gen=g.get_state(), torch_rng=torch.get_rng_state()), tmp)
            os.replace(tmp, ckpt_path)
            model.eval()
            save_hf(model.cpu(), processor, args.out / "hf_last")
            if ema is not None:
                save_hf(ema.model_copy(model), processor, args.out / "hf_ema")
            model.to(device)  # the same Parameter objects: the optimizer state stays valid
            model.train()
            rn, c, rn2, c2 = audio_use(model, ctc_head, feats, labels, prompts, check_idx)
            print(f"checkpoint step {step} audio check (r=13, 12 clips): rnnt {rn:.3f} vs swapped {rn2:.3f}, "
                  f"ctc {c:.3f} vs swapped {c2:.3f}", flush=True)


if __name__ == "__main__":
    main()
