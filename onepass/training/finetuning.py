"""``onepass finetune``: adapt a model to a new locale or domain from a manifest (the orchestration over
the pieces of this package)."""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import OnePassError
from .data import BucketedBatches, Example, Examples
from .loop import Hooks, LoopResult, LoopSettings, Trainer
from .manifest import Problem, Utterance, read_training_manifest
from .network import HF_FILES, Trainable, add_language, freeze, load_trainable, param_groups, save_hf
from .objective import Distillation, RNNTObjective
from .schedule import lr_at
from .settings import FinetuneSettings
from .text import NORMALIZER, coverage
from .validation import Validation, Validator, default_chunks

STATE = "state.pt"


@dataclass
class FinetuneResult:
    out: Path
    steps: int
    seconds: float
    utterances_per_s: float
    realtime_factor: float  # seconds of training audio per wall-clock second
    skipped: list[Problem] = field(default_factory=list)
    before: Validation | None = None  # validation of the starting weights
    after: Validation | None = None  # validation of the saved weights
    languages: dict[str, int] = field(default_factory=dict)  # locale -> prompt slot used in training


class _Tokenizer:
    """The model's tokenizer.json through the tokenizers library (the ids onepass and transformers use)."""

    def __init__(self, path: Path, blank: int):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(path))
        self.blank = blank
        vocab = self.tok.get_vocab()
        self.unk = vocab.get("<unk>", 0)
        self.byte_ids = {i for p, i in vocab.items() if len(p) == 6 and p.startswith("<0x") and p.endswith(">")}

    def encode(self, text: str) -> tuple[list[int], list[str]]:
        enc = self.tok.encode(text, add_special_tokens=False)
        return list(enc.ids), list(enc.tokens)


class _Hooks(Hooks):
    def __init__(self, trainable: Trainable, out: Path, validator: Validator | None, say: Callable[[str], None]):
        self.trainable, self.out, self.validator, self.say = trainable, out, validator, say
        self.last: Validation | None = None

    @staticmethod
    def weights(trainer: Trainer):
        """What is validated and saved: the weight average when the run keeps one, else the live weights."""
        return trainer.ema.model_copy(trainer.model) if trainer.ema is not None else None

    def validate(self, trainer: Trainer) -> float | None:
        if self.validator is None:
            return None
        self.last = self.validator(self.trainable, self.weights(trainer))
        self.say(f"step {trainer.step}: validation {self.last.line()}")
        return self.last.mean_wer

    def on_best(self, trainer: Trainer, score: float) -> None:
        save_hf(self.trainable, self.out / "best", self.weights(trainer))
        (self.out / "best" / "validation.json").write_text(json.dumps(
            {"step": trainer.step, "wer_by_chunk_ms": self.last.wer_by_chunk_ms if self.last else None}, indent=2))

    def on_checkpoint(self, trainer: Trainer) -> None:
        save_hf(self.trainable, self.out / "last", self.weights(trainer))


def _slots(trainable: Trainable, utts: list[Utterance], language: str | None, train_path: str,
           ) -> tuple[list[int | None], dict[str, int], list[Problem]]:
    """Prompt slot per utterance (None: skipped, listed) and the locales used."""
    if not trainable.has_prompt:
        return [0] * len(utts), {}, []
    table = {k.lower().replace("_", "-"): v for k, v in trainable.prompt_dictionary.items()}
    default = None
    used: dict[str, int] = {}
    if language:
        default, new = add_language(trainable, language)
        used[language] = default
        table[language.lower().replace("_", "-")] = default
    slots: list[int | None] = []
    problems = []
    for u in utts:
        if u.lang is None:
            if default is None:
                raise OnePassError(f"{train_path}: line {u.line} has no \"lang\"; pass --language CODE for such lines")
            slots.append(default)
            continue
        slot = table.get(u.lang.lower().replace("_", "-"))
        if slot is None:
            problems.append(Problem(train_path, u.line, f"unknown language {u.lang!r} (pass --language {u.lang} "
                                                        "to give it a prompt slot)"))
        else:
            used.setdefault(u.lang, slot)
        slots.append(slot)
    return slots, used, problems


def _featurizer(trainable: Trainable) -> Callable[[str], torch.Tensor]:
    from ..audio import load_for_model

    fe = trainable.processor.feature_extractor

    def featurize(path: str) -> torch.Tensor:
        audio, _ = load_for_model(path)
        x = fe(audio, sampling_rate=16000, return_tensors="pt")
        return x["input_features"][0, : int(x["attention_mask"][0].sum())]

    return featurize


def _publish(src: Path, out: Path) -> None:
    """Put the chosen weights' HF files at the top of ``out`` (hard links where possible)."""
    for name in HF_FILES:
        target = out / name
        if target.exists():
            target.unlink()
        try:
            os.link(src / name, target)
        except OSError:
            shutil.copyfile(src / name, target)


def _check_same_run(s: FinetuneSettings, out: Path) -> None:
    """A resumed run must train the same model on the same data (its batch order and slots depend on them)."""
    try:
        saved = json.loads((out / "finetune.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    changed = [f"--{k.replace('_', '-')} {saved.get(k)!r} -> {getattr(s, k)!r}" for k in RUN_IDENTITY
               if saved.get(k) != getattr(s, k)]
    if changed:
        raise OnePassError(f"--resume continues the run in {out} with its own model and data; changed: "
                           + ", ".join(changed))


RUN_IDENTITY = ("model", "train", "language", "freeze", "lr_scale", "seed")


def finetune(s: FinetuneSettings, say: Callable[[str], None] = print) -> FinetuneResult:
    """Run (or resume) a fine-tuning run; writes the fine-tuned HF directory to ``s.out``."""
    out = Path(s.out).expanduser()
    state_path = out / STATE
    if state_path.exists() and not s.resume:
        raise OnePassError(f"{out} already holds a run ({STATE}): pass --resume to continue it, or choose "
                           "another --out")
    if s.resume and not state_path.exists():
        raise OnePassError(f"nothing to resume: {state_path} does not exist")
    if s.resume:
        _check_same_run(s, out)
    if s.threads:
        torch.set_num_threads(s.threads)
    random.seed(s.seed)
    torch.manual_seed(s.seed)
    trainable = load_trainable(s.model)
    say(f"model: {trainable.source} ({sum(p.numel() for p in trainable.model.parameters()) / 1e6:.1f} M "
        f"parameters, chunk sizes {', '.join(str(80 * (r + 1)) for r in trainable.right_contexts)} ms)")

    utts, skipped = read_training_manifest(s.train, s.batch.max_utterance_s)
    slots, languages, bad = _slots(trainable, utts, s.language, s.train)
    skipped += bad
    tok = _Tokenizer(trainable.source / "tokenizer.json", trainable.blank)
    examples: list[Example] = []
    for u, slot in zip(utts, slots):
        if slot is None:
            continue
        ids, _ = tok.encode(u.text)
        if not ids or max(ids) >= trainable.blank:
            skipped.append(Problem(s.train, u.line, "text has no tokens the model can emit"))
            continue
        examples.append(Example(str(u.audio_path), u.text, ids, slot, int(u.duration_s * 100)))
    if not examples:
        raise OnePassError(f"{s.train}: no usable lines (see the skipped lines above)")
    for p in skipped[:20]:
        say(f"skipped {p}")
    if len(skipped) > 20:
        say(f"... and {len(skipped) - 20} more skipped lines (all in {out / 'skipped.txt'})")
    hours = sum(e.frames for e in examples) / 360000
    say(f"training set: {len(examples)} utterances, {hours:.2f} h, {len(skipped)} lines skipped; languages: "
        + ", ".join(f"{k} (slot {v})" for k, v in sorted(languages.items())))
    say(f"text normaliser: {NORMALIZER}")
    for line in coverage([e.text for e in examples], tok.encode, tok.unk, tok.byte_ids).lines():
        say(line)

    validator = None
    if s.val:
        val_utts, val_bad = read_training_manifest(s.val, s.batch.max_utterance_s)
        for p in val_bad[:20]:
            say(f"skipped (validation) {p}")
        validator = Validator(val_utts, s.language, default_chunks(trainable, s.val_chunk_ms),
                              trainable.source / "tokenizer.json", s.device)

    frozen = freeze(trainable.model, s.freeze)
    if frozen:
        say(f"frozen: {', '.join(frozen)}")
    device = torch.device(s.device)
    try:
        trainable.model.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise OnePassError(f"cannot move the model to {s.device}: {exc}") from None
    groups = param_groups(trainable.model, s.lr_scale)
    if s.lr_scale:
        say(f"learning rate scales: {s.lr_scale}")
    o = s.optim
    opt = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay, betas=o.betas)

    def on_bad(i: int, exc: Exception) -> None:
        say(f"skipped {examples[i].audio_path}: unreadable audio ({type(exc).__name__}: {exc})")

    total_audio_s = hours * 3600
    batches = BucketedBatches(Examples(examples, _featurizer(trainable), cache=total_audio_s < 4 * 3600),
                              s.batch, s.augment, s.seed, on_bad)
    total = s.steps or max(1, math.ceil(s.epochs * batches.batches_per_epoch() / s.batch.accumulate))
    autocast = {"auto": "bfloat16" if device.type == "cuda" else None, "bf16": "bfloat16", "fp32": None}[s.precision]
    loop = LoopSettings(total_steps=total, right_contexts=trainable.right_contexts,
                        right_context_weights=s.right_context_weights, accumulate=s.batch.accumulate,
                        grad_clip=o.grad_clip, checkpoint_every=s.checkpoint_every, validate_every=s.validate_every,
                        log_every=s.log_every, ema_decay=s.ema_decay,
                        autocast=autocast, seed=s.seed, progress=s.progress,
                        deadline_s=None if s.max_minutes is None else 60 * s.max_minutes,
                        fixed_embedding_rows=(trainable.blank,), anchor=o.anchor)
    out.mkdir(parents=True, exist_ok=True)
    hooks = _Hooks(trainable, out, validator, say)
    # the teacher is the starting model: copied before a resumed run's weights are loaded
    distill = Distillation(copy.deepcopy(trainable.model), s.distill) if s.distill > 0 else None
    objective = RNNTObjective(s.max_joint_elements, s.pred_input_drop, s.seed, distill, s.fastemit)
    trainer = Trainer(trainable.model, objective, batches, opt,
                      lambda step, p: lr_at(step, total, o, p), loop, state_path, hooks, out / "log.jsonl", device)
    (out / "skipped.txt").write_text("".join(f"{p}\n" for p in skipped), encoding="utf-8")
    before = None
    if s.resume:
        trainer.load_state_dict(torch.load(state_path, map_location=device, weights_only=False))
        say(f"resumed at step {trainer.step} of {total}")
    else:
        (out / "finetune.json").write_text(json.dumps(asdict(s), indent=2), encoding="utf-8")
        if validator is not None:
            trainable.model.eval()
            with torch.no_grad():
                before = validator(trainable)
            trainable.model.train()
            say(f"before training: {before.line()}")
    say(f"training: {total} steps of {s.batch.batch_seconds:g} s batches x {s.batch.accumulate}, "
        f"{batches.batches_per_epoch()} batches per epoch, lr {o.lr:g} ({o.schedule}), device {device}"
        + (", bf16 autocast" if autocast and device.type == "cuda" else ""))
    result: LoopResult = trainer.run()
    chosen = out / ("best" if (out / "best" / "config.json").exists() else "last")
    _publish(chosen, out)
    say(f"saved {out} ({chosen.name} weights, step {trainer.step}); {result.realtime_factor:.1f} s of audio per "
        f"second, {result.utterances_per_s:.2f} utterances per second")
    after = None
    if validator is not None:
        best = json.loads((out / "best" / "validation.json").read_text()) if chosen.name == "best" else None
        after = Validation({int(k): v for k, v in best["wer_by_chunk_ms"].items()}) if best else hooks.last
    return FinetuneResult(out, trainer.step, result.seconds, result.utterances_per_s, result.realtime_factor,
                          skipped, before, after, languages)
