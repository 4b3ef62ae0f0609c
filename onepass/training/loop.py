"""The one training loop: batches -> objective -> (accumulated) backward -> clipped AdamW step, with the
learning-rate schedule, a right context drawn per batch from the model's chunk sizes, an optional
weight average, periodic resume checkpoints and validation, a progress bar, and Ctrl-C saving before it
exits. What differs between recipes (losses, batch sources, phases) comes in through ``Objective``,
``BatchSource`` and ``Hooks``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch

from .average import WeightAverage
from .data import Batch
from .objective import StepLoss, to_device


def draw_right_context(right_contexts: tuple[int, ...], weights: tuple[float, ...], g: torch.Generator) -> int:
    """One batch's right context: uniform over ``right_contexts``, or by ``weights`` (one per entry)."""
    if not weights:
        return right_contexts[int(torch.randint(len(right_contexts), (1,), generator=g))]
    return right_contexts[int(torch.multinomial(torch.tensor(weights, dtype=torch.float64), 1, generator=g))]


class Objective(Protocol):
    def __call__(self, model, batch: Batch, right_context: int, step: int) -> StepLoss: ...

    def parameters(self) -> list[torch.nn.Parameter]: ...


class BatchSource(Protocol):
    def next(self) -> Batch: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class Hooks:
    """Recipe extension points; every method is optional (these defaults do nothing)."""

    def before_step(self, trainer: "Trainer") -> None:
        """Called before each optimizer step (e.g. to freeze or unfreeze parameters)."""

    def lr(self, trainer: "Trainer", scheduled: float) -> float:
        return scheduled

    def validate(self, trainer: "Trainer") -> float | None:
        """A score to minimise (e.g. WER), or None when there is nothing to validate."""
        return None

    def on_checkpoint(self, trainer: "Trainer") -> None:
        """After the resume state is written (e.g. export the weights)."""

    def on_best(self, trainer: "Trainer", score: float) -> None:
        """After a validation that improved on every earlier one."""

    def on_log(self, trainer: "Trainer", record: dict) -> None:
        """Every ``log_every`` steps (the record also goes to the log file)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass(frozen=True)
class LoopSettings:
    total_steps: int  # optimizer steps of the schedule (and of the run unless max_steps / deadline stop it)
    right_contexts: tuple[int, ...]  # drawn per batch: every chunk size the model streams at is trained
    right_context_weights: tuple[float, ...] = ()  # empty: uniform
    accumulate: int = 1  # batches per optimizer step
    grad_clip: float = 1.0
    checkpoint_every: int = 50  # optimizer steps between resume checkpoints (0: only at the end)
    validate_every: int = 0  # optimizer steps between validations (0: at checkpoints)
    log_every: int = 10
    ema_decay: float = 0.0  # > 0: keep a moving average of the weights (decay per optimizer step)
    max_steps: int | None = None  # stop here (the schedule still runs to total_steps)
    deadline_s: float | None = None  # wall-clock budget: the decay is squeezed to end by then
    autocast: str | None = None  # "bfloat16": autocast on CUDA; None: float32
    seed: int = 0
    progress: bool = True  # tqdm bar on stderr
    fixed_embedding_rows: tuple[int, ...] = ()  # embedding rows kept as they are (the zero start symbol)
    anchor: float = 0.0  # > 0: after each step move the weights lr x anchor of the way back to their values at
    # the start (a decoupled L2-SP penalty: the run stays near the weights it started from, against forgetting)


@dataclass
class LoopResult:
    steps: int
    seconds: float
    audio_s: float  # audio seen in training
    utterances: int
    best_score: float | None
    history: list[dict] = field(default_factory=list)  # the log records

    @property
    def utterances_per_s(self) -> float:
        return self.utterances / max(1e-9, self.seconds)

    @property
    def realtime_factor(self) -> float:
        return self.audio_s / max(1e-9, self.seconds)


class Trainer:
    def __init__(self, model: torch.nn.Module, objective: Objective, batches: BatchSource,
                 optimizer: torch.optim.Optimizer, lr_at: Callable[[int, float | None], float],
                 settings: LoopSettings, state_path: Path | None, hooks: Hooks | None = None,
                 log_path: Path | None = None, device: str | torch.device = "cpu"):
        self.model, self.objective, self.batches, self.optimizer = model, objective, batches, optimizer
        self.lr_at, self.settings, self.state_path = lr_at, settings, state_path
        self.hooks, self.log_path, self.device = hooks or Hooks(), log_path, torch.device(device)
        self.step = 0
        self.best: float | None = None
        self.g = torch.Generator().manual_seed(settings.seed)
        self.ema = WeightAverage(model, settings.ema_decay) if settings.ema_decay else None
        # the weights the anchor pulls toward: the trained parameters as they are now, before any resume state
        self._anchor = [p.detach().clone() for p in self.params()] if settings.anchor else None
        self.history: list[dict] = []
        self._elapsed_before = 0.0  # seconds of earlier sessions of this run (resume)
        self._t0 = time.perf_counter()
        if settings.right_context_weights and len(settings.right_context_weights) != len(settings.right_contexts):
            raise ValueError(f"right_context_weights {settings.right_context_weights}: one weight per right "
                             f"context {settings.right_contexts}")

    # --- state ---------------------------------------------------------------------------------------
    def params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                "best": self.best, "batches": self.batches.state_dict(), "g": self.g.get_state(),
                "torch_rng": torch.get_rng_state(), "ema": self.ema.state if self.ema is not None else None,
                "hooks": self.hooks.state_dict(), "elapsed_s": self.elapsed_s,
                "objective": getattr(self.objective, "state_dict", dict)()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.best = int(state["step"]), state.get("best")
        self.batches.load_state_dict(state["batches"])
        self.g.set_state(state["g"])
        torch.set_rng_state(state["torch_rng"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema = WeightAverage(self.model, self.settings.ema_decay, state["ema"])
        self.hooks.load_state_dict(state.get("hooks") or {})
        if state.get("objective") and hasattr(self.objective, "load_state_dict"):
            self.objective.load_state_dict(state["objective"])
        self._elapsed_before = float(state.get("elapsed_s", 0.0))

    def save(self) -> None:
        """Write the resume state atomically (a crash mid-write keeps the previous one)."""
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, self.state_path)

    @property
    def elapsed_s(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._t0

    # --- schedule ------------------------------------------------------------------------------------
    def time_fraction(self) -> float | None:
        """Fraction of the wall-clock budget used (None without a deadline): squeezes the schedule."""
        if self.settings.deadline_s is None:
            return None
        return min(1.0, self.elapsed_s / self.settings.deadline_s)

    def draw_right_context(self) -> int:
        return draw_right_context(self.settings.right_contexts, self.settings.right_context_weights, self.g)

    def _done(self) -> bool:
        s = self.settings
        if self.step >= (s.max_steps or s.total_steps):
            return True
        return s.deadline_s is not None and self.elapsed_s >= s.deadline_s

    # --- one step ------------------------------------------------------------------------------------
    def _autocast(self):
        if self.settings.autocast and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=getattr(torch, self.settings.autocast))
        return contextlib.nullcontext()

    def train_step(self) -> dict:
        """One optimizer step over ``accumulate`` batches; returns its log numbers."""
        self.hooks.before_step(self)
        lr = self.hooks.lr(self, self.lr_at(self.step, self.time_fraction()))
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        metrics: dict[str, float] = {}
        audio_s, utts, labels = 0.0, 0, 0
        k = self.settings.accumulate
        for _ in range(k):
            batch = self.batches.next()
            r = self.draw_right_context()
            with self._autocast():
                out = self.objective(self.model, to_device(batch, self.device), r, self.step)
            if out.loss.requires_grad:
                (out.loss / k).backward()
            for name, v in out.metrics.items():
                metrics[name] = metrics.get(name, 0.0) + v / k
            audio_s, utts, labels = audio_s + batch.audio_s, utts + batch.size, labels + out.labels
        emb = getattr(getattr(self.model, "decoder", None), "embedding", None)
        if emb is not None and emb.weight.grad is not None:
            for row in self.settings.fixed_embedding_rows:
                emb.weight.grad[row].zero_()
        params = [p for p in self.params() if p.grad is not None]
        gn = torch.nn.utils.clip_grad_norm_(params, self.settings.grad_clip) if params else torch.zeros(())
        finite = bool(torch.isfinite(gn))
        if finite and params:
            self.optimizer.step()
            if self._anchor is not None:
                self._pull_to_anchor()
            if self.ema is not None:
                self.ema.update(self.model)
        self.step += 1
        return dict(metrics, lr=lr, grad_norm=float(gn), skipped=not finite, audio_s=audio_s, utterances=utts,
                    labels=labels)

    @torch.no_grad()
    def _pull_to_anchor(self) -> None:
        anchors = iter(self._anchor)
        for group in self.optimizer.param_groups:
            weight = min(1.0, group["lr"] * self.settings.anchor)
            for p in group["params"]:
                p.lerp_(next(anchors), weight)

    # --- the loop ------------------------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        self.history.append(record)
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        self.hooks.on_log(self, record)

    def validate(self) -> float | None:
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                score = self.hooks.validate(self)
        finally:
            self.model.train(was)
        if score is not None:
            self._log({"step": self.step, "validation": score})
            if self.best is None or score < self.best:
                self.best = score
                self.hooks.on_best(self, score)
        return score

    def checkpoint(self, validate: bool = True) -> None:
        if validate and not self.settings.validate_every:
            self.validate()
        self.save()
        self.hooks.on_checkpoint(self)

    def run(self) -> LoopResult:
        """Train until max_steps / total_steps / the deadline. Ctrl-C saves the resume state first."""
        from tqdm import tqdm

        s = self.settings
        self._t0 = time.perf_counter()
        self.model.train()
        audio_total, utt_total, acc, n_acc = 0.0, 0, {}, 0
        t_log = time.perf_counter()
        bar = tqdm(total=s.max_steps or s.total_steps, initial=self.step, unit="step", file=sys.stderr,
                   disable=not s.progress, dynamic_ncols=True, leave=True)
        try:
            while not self._done():
                rec = self.train_step()
                audio_total += rec["audio_s"]
                utt_total += rec["utterances"]
                for key, v in rec.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        acc[key] = acc.get(key, 0.0) + v
                n_acc += 1
                bar.update(1)
                if self.step % s.log_every == 0 or self._done():
                    dt = max(1e-9, time.perf_counter() - t_log)
                    record = {"step": self.step, "epoch": round(getattr(self.batches, "fraction_of_epoch", 0.0), 3),
                              **{k: v / n_acc for k, v in acc.items() if k not in ("audio_s", "utterances", "labels")},
                              "lr": rec["lr"], "realtime": acc.get("audio_s", 0.0) / dt,
                              "utterances_per_s": acc.get("utterances", 0.0) / dt,
                              "elapsed_s": round(self.elapsed_s, 1)}
                    main = next((k for k in ("rnnt", "loss") if k in record), None)
                    bar.set_postfix_str(
                        (f"loss {record[main]:.3f} " if main else "")
                        + f"lr {rec['lr']:.1e} {record['realtime']:.1f}x real time "
                        f"{record['utterances_per_s']:.1f} utt/s")
                    self._log(record)
                    acc, n_acc, t_log = {}, 0, time.perf_counter()
                if s.validate_every and self.step % s.validate_every == 0 and not self._done():
                    self.validate()
                if s.checkpoint_every and self.step % s.checkpoint_every == 0 and not self._done():
                    self.checkpoint()
        except KeyboardInterrupt:
            bar.close()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the save
            try:
                self.checkpoint(validate=False)
                print(f"interrupted: saved step {self.step} to {self.state_path}", file=sys.stderr)
            finally:
                signal.signal(signal.SIGINT, previous)
            raise
        bar.close()
        self.validate()  # the final weights are always scored
        self.checkpoint(validate=False)
        return LoopResult(self.step, self.elapsed_s, audio_total, utt_total, self.best, self.history)
