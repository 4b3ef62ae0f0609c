"""Settings of a fine-tuning run (``onepass finetune``), grouped by concern."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OptimSettings:
    """AdamW with warmup and a decay schedule."""

    lr: float = 3e-4  # peak learning rate
    schedule: str = "cosine"  # cosine | linear | constant (after the warmup)
    warmup_steps: int = 50  # linear warmup from lr / warmup_steps
    lr_floor: float = 0.05  # the decay ends at lr_floor * lr
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0  # global gradient norm
    anchor: float = 0.0  # > 0: pull the weights toward the starting ones by lr x anchor of the way per step


@dataclass(frozen=True)
class AugmentSettings:
    """SpecAugment-style masking of the log-mel features (training batches only)."""

    freq_masks: int = 2
    freq_mask_bins: int = 15  # widest frequency mask, mel bins
    time_masks: int = 2
    time_mask_fraction: float = 0.05  # widest time mask, as a fraction of the utterance
    time_mask_frames: int | None = None  # and at most this many mel frames (None: no cap)
    freq_warp: float = 0.0  # per-utterance mel-axis warp by a factor in [1 - w, 1 + w]; 0: off


@dataclass(frozen=True)
class BatchSettings:
    """Length-bucketed batches."""

    batch_seconds: float = 60.0  # audio per batch, padding included (max length x utterances)
    max_utterances: int = 64  # per batch
    accumulate: int = 1  # batches per optimizer step (gradient accumulation)
    max_utterance_s: float = 40.0  # longer utterances are skipped (listed) rather than risk memory


@dataclass(frozen=True)
class FinetuneSettings:
    """One ``onepass finetune`` run."""

    model: str  # HF directory, hub id or "demo"
    train: str  # NeMo-style manifest (audio_filepath, text, optional lang)
    out: str  # output directory: the fine-tuned HF model, its resume state and log
    val: str | None = None  # manifest for validation WER (streamed, per chunk size)
    steps: int | None = None  # optimizer steps; None: from epochs
    max_minutes: float | None = None  # wall-clock budget: the schedule is squeezed to end by then
    epochs: float = 5.0  # passes over the training set when steps is None
    language: str | None = None  # locale of rows without "lang" (a new locale gets an unused prompt slot)
    freeze: str | None = None  # "subsampling", "encoder", or K: the subsampling and the bottom K layers
    lr_scale: str | None = None  # "PART=FACTOR,...": a part's learning rate, times the schedule's (network.param_groups)
    device: str = "cpu"
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 elsewhere) | bf16 | fp32
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: torch's default)
    validate_every: int = 0  # optimizer steps between validations (0: at checkpoints only)
    checkpoint_every: int = 50  # optimizer steps between resume checkpoints
    log_every: int = 10  # optimizer steps per log record (OUT/log.jsonl)
    val_chunk_ms: tuple[int, ...] = ()  # chunk sizes to validate (empty: every chunk size of the model)
    right_context_weights: tuple[float, ...] = ()  # per model right context; empty: uniform draw
    resume: bool = False
    ema_decay: float = 0.0  # > 0: validate and save a moving average of the weights (decay per step)
    pred_input_drop: float = 0.0  # probability of replacing a prediction-net history token by the start symbol
    fastemit: float = 0.0  # FastEmit weight (loss.fastemit): label emissions' gradient times 1 + this
    distill: float = 0.0  # > 0: weight of the distillation toward the starting model (objective.Distillation)
    max_joint_elements: int = 1 << 25  # logits per joint slice of the RNN-T loss (memory bound)
    progress: bool = True  # a progress bar on stderr
    optim: OptimSettings = field(default_factory=OptimSettings)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
