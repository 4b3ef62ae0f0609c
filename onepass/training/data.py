"""Training examples and length-bucketed batches: features, prompt slots and label ids, padded."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import torch

from .augment import spec_augment
from .settings import AugmentSettings, BatchSettings

MEL_HOP_S = 0.01  # one log-mel frame per 10 ms


@dataclass
class Example:
    """One utterance ready to train on (features are made when first needed, see ``Examples``)."""

    audio_path: str
    text: str
    labels: list[int]
    prompt: int  # language prompt slot
    frames: int  # log-mel frames (length for bucketing)


@dataclass
class Batch:
    feats: torch.Tensor  # [B, T, mels] float32, zero past each length
    mask: torch.Tensor  # [B, T] long, 1 on valid frames
    prompts: torch.Tensor  # [B] prompt slots
    labels: torch.Tensor  # [B, U] label ids, padded with 0
    label_lengths: torch.Tensor  # [B]
    audio_s: float  # seconds of audio (valid frames)
    extra: dict = field(default_factory=dict)  # recipe-specific tensors (e.g. frame targets), moved with the batch

    @property
    def size(self) -> int:
        return int(self.feats.shape[0])


class Examples:
    """Examples and their log-mel features: computed from the audio on first use and kept (fp16) when
    ``cache`` (a fine-tuning set fits in memory; a corpus of hundreds of hours would not)."""

    def __init__(self, examples: list[Example], featurize: Callable[[str], torch.Tensor], cache: bool = True):
        self.items, self.featurize, self.cache = examples, featurize, cache
        self._feats: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.items)

    def features(self, i: int) -> torch.Tensor:
        f = self._feats.get(i)
        if f is None:
            f = self.featurize(self.items[i].audio_path)
            if self.cache:
                self._feats[i] = f.to(torch.float16)
        return f.float()


def make_batches(lengths: list[int], cfg: BatchSettings, rng: random.Random, shuffle: bool = True) -> list[list[int]]:
    """Length-bucketed batches (sorted with a little jitter) of at most ``batch_seconds`` of padded audio
    and ``max_utterances`` each, in shuffled order (else short to long)."""
    max_frames = cfg.batch_seconds / MEL_HOP_S
    order = sorted(range(len(lengths)), key=lambda i: lengths[i] + rng.uniform(0, 40))
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        m = max(cur_max, lengths[i])
        if cur and (m * (len(cur) + 1) > max_frames or len(cur) >= cfg.max_utterances):
            batches.append(cur)
            cur, m = [], lengths[i]
        cur.append(i)
        cur_max = m
    if cur:
        batches.append(cur)
    if shuffle:
        rng.shuffle(batches)
    return batches


def collate(feats: list[torch.Tensor], labels: list[list[int]], prompts: list[int],
            augment: AugmentSettings | None = None, g: torch.Generator | None = None) -> Batch:
    """Pad a list of examples into a ``Batch`` (SpecAugment when ``augment`` is given)."""
    B = len(feats)
    lengths = torch.tensor([f.shape[0] for f in feats])
    x = torch.zeros(B, int(lengths.max()), feats[0].shape[1])
    for j, f in enumerate(feats):
        x[j, : f.shape[0]] = f
    mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).long()
    if augment is not None:
        x = spec_augment(x, lengths, augment, g)
    U = max(1, max(len(lab) for lab in labels))
    y = torch.zeros(B, U, dtype=torch.long)
    for j, lab in enumerate(labels):
        y[j, : len(lab)] = torch.tensor(lab, dtype=torch.long)
    return Batch(x, mask, torch.tensor(prompts, dtype=torch.long), y,
                 torch.tensor([len(lab) for lab in labels]), float(lengths.sum()) * MEL_HOP_S)


class BucketedBatches:
    """The training batches, epoch after epoch (a fresh seeded order each epoch); its position is part of
    the resume state, so a resumed run sees the batches an uninterrupted run would have."""

    def __init__(self, examples: Examples, cfg: BatchSettings, augment: AugmentSettings | None, seed: int,
                 on_bad: Callable[[int, Exception], None] | None = None):
        self.examples, self.cfg, self.augment, self.seed = examples, cfg, augment, seed
        self.epoch, self.position = 0, 0
        self.g = torch.Generator().manual_seed(seed)
        self.bad: set[int] = set()
        self.on_bad = on_bad
        self._order: list[list[int]] | None = None

    def _epoch_batches(self) -> list[list[int]]:
        if self._order is None:
            lengths = [self.examples.items[i].frames for i in range(len(self.examples))]
            self._order = make_batches(lengths, self.cfg, random.Random(self.seed * 7919 + self.epoch))
        return self._order

    def batches_per_epoch(self) -> int:
        return len(self._epoch_batches())

    def next(self) -> Batch:
        while True:
            order = self._epoch_batches()
            if self.position >= len(order):
                self.epoch, self.position, self._order = self.epoch + 1, 0, None
                continue
            idx = [i for i in order[self.position] if i not in self.bad]
            self.position += 1
            feats, keep = [], []
            for i in idx:
                try:
                    feats.append(self.examples.features(i))
                    keep.append(i)
                except Exception as exc:  # audio that passed the header check but does not decode
                    self.bad.add(i)
                    if self.on_bad is not None:
                        self.on_bad(i, exc)
            if keep:
                items = [self.examples.items[i] for i in keep]
                return collate(feats, [e.labels for e in items], [e.prompt for e in items], self.augment, self.g)

    @property
    def fraction_of_epoch(self) -> float:
        return self.epoch + self.position / max(1, len(self._epoch_batches()))

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "g": self.g.get_state(), "bad": sorted(self.bad)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self._order = state["epoch"], state["position"], None
        self.g.set_state(state["g"])
        self.bad = set(state.get("bad", ()))
