"""The demo recipe's batch source for onepass.training's loop: length-bucketed clips of the corpus (with a
warm-up subset and short-to-long first epochs when the config asks), mixed with long-form examples built
on the fly (longform.py), SpecAugment, the "auto" prompt now and then, and the frame-level warm-start
targets of each clip in ``batch.extra``."""

from __future__ import annotations

import itertools
import random

import soundfile as sf
import torch

from onepass.training.data import Batch, collate, make_batches
from onepass.training.settings import AugmentSettings, BatchSettings

from .evaluate import normalize
from .longform import LongFormConfig, build_example, draw_clips
from .start import AUTO_SLOT, PROMPT_SLOT
from .targets import pad_frame_targets


def augment_settings(cfg) -> AugmentSettings:
    """The recipe's SpecAugment: time masks up to a tenth of the clip and time_mask_width frames."""
    return AugmentSettings(freq_masks=cfg.freq_masks, freq_mask_bins=cfg.freq_mask_width, time_masks=cfg.time_masks,
                           time_mask_fraction=0.1, time_mask_frames=cfg.time_mask_width, freq_warp=cfg.freq_warp)


def batch_settings(cfg, max_frames: int | None = None) -> BatchSettings:
    return BatchSettings(batch_seconds=(max_frames or cfg.max_frames_per_batch) / 100, max_utterances=cfg.max_batch)


def focus_weights(rows: list[dict], by_lang: dict[str, list[int]], focus: dict) -> dict[str, list[float]]:
    """Cumulative draw weights per language in by_lang's order: ``focus["weight"]`` for a clip whose
    normalised text has one of ``focus["words"][lang]``, else 1."""
    w = float(focus["weight"])
    out = {}
    for lang, idx in by_lang.items():
        words = set(focus["words"].get(lang, ()))
        out[lang] = list(itertools.accumulate(
            w if words.intersection(normalize(rows[i]["text"]).split()) else 1.0 for i in idx))
    return out


class DemoBatches:
    def __init__(self, cfg, rows: list[dict], feats, labels: list[list[int]], prompts: list[int], encode_text,
                 featurize, frame_paths: list, phone_paths: list, subsampled_length):
        self.cfg, self.rows, self.feats, self.labels, self.prompts = cfg, rows, feats, labels, prompts
        self.encode_text, self.featurize = encode_text, featurize
        self.frame_paths, self.phone_paths, self.subsampled_length = frame_paths, phone_paths, subsampled_length
        self.lengths = [feats.frames(i) for i in range(len(feats))] if hasattr(feats, "frames") else \
            [f.shape[0] for f in feats]
        self.g = torch.Generator().manual_seed(cfg.seed)
        self.lf_rng = random.Random(cfg.seed * 1_000_003)
        self.lf_cfg = LongFormConfig(**cfg.longform)
        self.step, self.epoch, self.pending, self.in_subset = 0, 0, [], False
        self.subset = [i for lang in PROMPT_SLOT
                       for i in [j for j, r in enumerate(rows) if r["lang"] == lang][: cfg.warm_subset]]
        self.by_lang: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            if len(labels[i]):
                self.by_lang.setdefault(row["lang"], []).append(i)
        self.durations = [float(row.get("duration", 0.0)) for row in rows]
        self.cum_weights = focus_weights(rows, self.by_lang, cfg.focus) if cfg.focus else None
        self.augment = augment_settings(cfg)

    # --- resume state --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pending": self.pending, "in_subset": self.in_subset, "g": self.g.get_state(),
                "lf_rng": self.lf_rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pending, self.in_subset = state["epoch"], state["pending"], state["in_subset"]
        self.g.set_state(state["g"])
        self.lf_rng.setstate(state["lf_rng"])

    @property
    def fraction_of_epoch(self) -> float:
        return float(self.epoch)

    # --- batches -------------------------------------------------------------------------------------
    def _refill(self) -> None:
        cfg = self.cfg
        if self.step >= cfg.warm_subset_steps and cfg.warm_subset and self.in_subset:
            self.pending, self.in_subset = [], False  # curriculum over: the full training set from here on
        if not self.pending:
            self.in_subset = self.step < cfg.warm_subset_steps and cfg.warm_subset > 0
            pool = self.subset if self.in_subset else list(range(len(self.lengths)))
            order = make_batches([self.lengths[i] for i in pool], batch_settings(cfg),
                                 random.Random(cfg.seed * 7919 + self.epoch),
                                 shuffle=self.in_subset or self.epoch >= cfg.sortagrad_epochs)
            self.pending = [[pool[j] for j in b] for b in order]
            self.epoch += 1

    def _longform(self) -> tuple[list[torch.Tensor], list[list[int]], list[int]]:
        """Long-form examples until the batch would pass longform_max_frames (at least one)."""
        cfg, rows = self.cfg, self.rows
        out_f, out_l, out_p = [], [], []
        while len(out_f) < cfg.max_batch:
            idx = draw_clips(self.by_lang, self.durations, self.lf_rng, self.lf_cfg, self.cum_weights)
            clips = [(sf.read(rows[i]["audio_filepath"], dtype="float32")[0], rows[i]["text"], rows[i].get("words"))
                     for i in idx]
            audio, text = build_example(clips, self.lf_rng, self.lf_cfg)
            f = self.featurize(audio)
            if f.shape[0] > cfg.longform_max_frames:
                continue  # rare (several long pauses): never cut the audio of a target
            if out_f and max(f.shape[0], max(t.shape[0] for t in out_f)) * (len(out_f) + 1) > cfg.longform_max_frames:
                break
            out_f.append(f)
            out_l.append(self.encode_text(text))
            out_p.append(PROMPT_SLOT[rows[idx[0]]["lang"]])
        return out_f, out_l, out_p

    def next(self) -> Batch:
        cfg = self.cfg
        self._refill()
        extra = {}
        if cfg.longform_prob and self.lf_rng.random() < cfg.longform_prob:
            feats, labels, prompts = self._longform()
        else:
            b = self.pending.pop(0)
            feats = [self.feats[i].float() for i in b]
            labels, prompts = [self.labels[i] for i in b], [self.prompts[i] for i in b]
            T = max(f.shape[0] for f in feats)
            Tp = int(self.subsampled_length(T))
            if cfg.align_weight:
                extra["align"] = pad_frame_targets(self.frame_paths, b, Tp)
            if cfg.phone_weight:
                extra["phones"] = pad_frame_targets(self.phone_paths, b, Tp)
        batch = collate(feats, labels, prompts, self.augment, self.g)
        if cfg.auto_prompt_prob:
            auto = torch.rand(batch.size, generator=self.g) < cfg.auto_prompt_prob
            batch.prompts = torch.where(auto, torch.full_like(batch.prompts, AUTO_SLOT), batch.prompts)
        batch.extra = extra
        return batch
