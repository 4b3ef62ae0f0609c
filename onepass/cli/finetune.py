"""``onepass finetune``: adapt a model to a new locale or domain from a NeMo-style manifest."""

from __future__ import annotations

import argparse
import sys

from .common import DEFAULT_MODEL


def add_parser(sub) -> None:
    p = sub.add_parser(
        "finetune", allow_abbrev=False, help="fine-tune a model on a manifest (new locale or domain)",
        description="Fine-tune a model on a NeMo-style manifest (JSON lines: audio_filepath, text, optional "
                    "lang). Every batch trains one of the model's chunk sizes, so the result streams at all of "
                    "them. Writes a Hugging Face directory (onepass and transformers load it; `onepass export` "
                    "works on it). Ctrl-C saves; --resume continues.")
    p.add_argument("--model", "-m", default=DEFAULT_MODEL,
                   help="HF model directory, hub id, or 'demo' (default: %(default)s)")
    p.add_argument("--train", required=True, help="training manifest (.jsonl)")
    p.add_argument("--val", help="validation manifest: WER per chunk size (streamed) at every checkpoint; "
                                 "the best weights are kept")
    p.add_argument("--out", "-o", required=True, help="output directory (the fine-tuned model)")
    g = p.add_argument_group("length")
    g.add_argument("--steps", type=int, help="optimizer steps (default: from --epochs)")
    g.add_argument("--epochs", type=float, default=5.0, help="passes over the training set (default: %(default)s)")
    g.add_argument("--max-minutes", type=float,
                   help="wall-clock budget: the schedule is squeezed to end in this time and training stops")
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default: %(default)s)")
    g.add_argument("--schedule", choices=["cosine", "linear", "constant"], default="cosine",
                   help="decay after the warmup (default: %(default)s)")
    g.add_argument("--warmup-steps", type=int, default=50, help="linear warmup (default: %(default)s)")
    g.add_argument("--weight-decay", type=float, default=1e-3, help="AdamW weight decay (default: %(default)s)")
    g.add_argument("--batch-seconds", type=float, default=60.0,
                   help="audio per batch, padding included (default: %(default)s)")
    g.add_argument("--accumulate", type=int, default=1,
                   help="batches per optimizer step (gradient accumulation; default: %(default)s)")
    g.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep a moving average of the weights (e.g. 0.99) and validate and save it instead of the "
                        "last weights: less noise, less forgetting (default: off)")
    g.add_argument("--anchor", type=float, default=0.0, metavar="A",
                   help="after each step move the weights lr x A of the way back to the starting weights (L2-SP: "
                        "the run stays near the model it adapts, against forgetting; e.g. 20; default: off)")
    g.add_argument("--pred-input-drop", type=float, default=0.0, metavar="P",
                   help="replace each history token of the prediction network by the start symbol with probability "
                        "P, so a small domain's word order does not become a language model (e.g. 0.1; default: off)")
    g.add_argument("--fastemit", type=float, default=0.0, metavar="L",
                   help="FastEmit regularization: the RNN-T loss's gradient toward emitting a label is 1 + L times "
                        "the plain one, so a streaming model learns to emit sooner instead of waiting for more audio "
                        "(NeMo's fastemit_lambda; e.g. 0.01; default: off)")
    g.add_argument("--distill", type=float, default=0.0, metavar="W",
                   help="add W x the divergence of the model's blank / next-label probabilities from the starting "
                        "model's on the lines that model already gets right (a frozen copy; replay lines of its own "
                        "data are held to what it predicted there; e.g. 1; default: off)")
    g.add_argument("--freeze", help="keep parts fixed, comma-separated: 'subsampling', 'encoder', K (the "
                                    "subsampling and the bottom K layers), 'decoder' (the prediction network), "
                                    "'joint', 'prompt' (the language prompt's projection)")
    g.add_argument("--lr-scale", metavar="PART=F,...",
                   help="a part's learning rate times F: comma-separated PART=F, PART one of 'encoder', 'decoder' "
                        "(the prediction network), 'joint', 'prompt'; e.g. encoder=0.1,decoder=0.3 (default: all 1)")
    g.add_argument("--no-specaugment", action="store_true", help="no frequency and time masking")
    g.add_argument("--freq-warp", type=float, default=0.0, metavar="W",
                   help="warp each utterance's mel axis by a random factor in [1 - W, 1 + W] (a voice "
                        "perturbation: fewer voices in the data need it to keep unseen voices right; "
                        "e.g. 0.08; default: off)")
    g = p.add_argument_group("data")
    g.add_argument("--language", help="locale of lines without 'lang'; an existing locale fine-tunes its prompt "
                                      "slot, a new one (e.g. szl-PL) gets an unused slot, saved with the model")
    g.add_argument("--val-chunk-ms", type=int, nargs="+", help="chunk sizes to validate (default: all)")
    g = p.add_argument_group("run")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cuda (bf16 autocast there; default: %(default)s)")
    g.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto: bf16 autocast on CUDA, fp32 elsewhere (default: %(default)s)")
    g.add_argument("--checkpoint-every", type=int, default=50,
                   help="steps between resume checkpoints and validations (default: %(default)s)")
    g.add_argument("--validate-every", type=int, default=0,
                   help="steps between validations (default: at every checkpoint)")
    g.add_argument("--log-every", type=int, default=10, help="steps per record in OUT/log.jsonl (default: %(default)s)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    g.add_argument("--threads", type=int, help="CPU threads for torch")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def settings_from(args: argparse.Namespace):
    from ..errors import OnePassError
    from ..training import AugmentSettings, BatchSettings, FinetuneSettings, OptimSettings
    from ..training.network import parse_lr_scale

    for name in ("steps", "accumulate", "checkpoint_every", "threads", "log_every"):
        v = getattr(args, name)
        if v is not None and v < (0 if name == "checkpoint_every" else 1):
            raise OnePassError(f"--{name.replace('_', '-')} must be positive, got {v}")
    if args.lr <= 0 or args.batch_seconds <= 0 or args.epochs <= 0:
        raise OnePassError("--lr, --batch-seconds and --epochs must be positive")
    if not 0.0 <= args.ema < 1.0:
        raise OnePassError(f"--ema must be in [0, 1), got {args.ema}")
    if not 0.0 <= args.freq_warp < 0.5:
        raise OnePassError(f"--freq-warp must be in [0, 0.5), got {args.freq_warp}")
    if args.anchor < 0 or args.anchor * args.lr >= 1.0:
        raise OnePassError(f"--anchor must be >= 0 and below 1 / --lr ({1 / args.lr:g}), got {args.anchor}")
    if not 0.0 <= args.distill <= 100.0:
        raise OnePassError(f"--distill must be in [0, 100], got {args.distill}")
    if not 0.0 <= args.pred_input_drop < 1.0:
        raise OnePassError(f"--pred-input-drop must be in [0, 1), got {args.pred_input_drop}")
    if not 0.0 <= args.fastemit <= 1.0:
        raise OnePassError(f"--fastemit must be in [0, 1], got {args.fastemit}")
    parse_lr_scale(args.lr_scale)  # a bad spec fails before anything is read
    masks = {"freq_masks": 0, "time_masks": 0} if args.no_specaugment else {}
    augment = AugmentSettings(freq_warp=args.freq_warp, **masks)
    return FinetuneSettings(
        model=args.model, train=args.train, out=args.out, val=args.val, steps=args.steps, epochs=args.epochs,
        max_minutes=args.max_minutes, language=args.language, freeze=args.freeze, lr_scale=args.lr_scale,
        device=args.device, precision=args.precision, seed=args.seed, threads=args.threads,
        validate_every=args.validate_every,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, ema_decay=args.ema,
        pred_input_drop=args.pred_input_drop, fastemit=args.fastemit, distill=args.distill,
        val_chunk_ms=tuple(args.val_chunk_ms or ()),
        resume=args.resume,
        progress=not args.no_progress and sys.stderr.isatty(),
        optim=OptimSettings(lr=args.lr, schedule=args.schedule, warmup_steps=args.warmup_steps,
                            weight_decay=args.weight_decay, anchor=args.anchor),
        augment=augment, batch=BatchSettings(batch_seconds=args.batch_seconds, accumulate=args.accumulate))


def run(args: argparse.Namespace) -> int:
    from ..training import finetune

    try:  # transformers' own progress bars (loading, saving) would interleave with ours
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
    result = finetune(settings_from(args), say=lambda line: print(line, flush=True))
    if result.before is not None and result.after is not None:
        print(f"validation before: {result.before.line()}")
        print(f"validation after:  {result.after.line()}")
    return 0
