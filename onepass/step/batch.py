"""A bucketed batch with static shapes: what one step of one chunk size runs on.

Rows are streams (or padding up to the bucket size: the scratch slot, zero frames counted as
none valid; the body decodes nothing for them). Every tensor's shape depends only on (bucket, mel frames per row), so a
captured CUDA graph can replay the step on new data copied into the same tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.frontend import FrameAudio, LogMel
from .arena import SCRATCH


def mel_frames(first: bool, right_context: int, factor: int, chunks: int = 1) -> int:
    """Real mel frames of ``chunks`` chunks of r+1 encoder frames: a segment's first chunk is
    shorter by factor-1 frames (its first encoder frame sees one mel frame); in the step's
    static layout it gets that many zero ``lead`` frames in front, so every row has
    ``mel_frames(False, ...)`` frames."""
    n = chunks * (right_context + 1)
    return 1 + factor * (n - 1) if first else factor * n


def bucket_size(rows: int, buckets: tuple[int, ...] | None) -> int:
    """The smallest bucket that holds ``rows`` (``rows`` itself without buckets or above the largest)."""
    for b in sorted(buckets or ()):
        if b >= rows:
            return b
    return rows


@dataclass
class Row:
    """One stream's part of a step (host side): its real mel frames, as features (offline: cut
    from the utterance's features) or as the samples they are computed from (streams: the step
    computes every row's frames in one batched STFT on the device)."""

    slot: int
    mel: torch.Tensor | None  # (n, mels) real mel frames, n <= the step's frames minus lead; or None:
    lead: int  # zero frames in front (factor - 1 on a segment's first chunk, else 0)
    final: bool  # the segment's last chunk (offline right padding, flush)
    prompt: int = 0  # language prompt slot (ignored by models without a prompt)
    frame_offset: int = 0  # stream frame of the segment's encoder frame 0
    audio: FrameAudio | None = None  # ... the STFT input of the n real frames (``SampleWindows.take``)

    @property
    def valid(self) -> int:
        return self.audio.frames if self.mel is None else len(self.mel)


@dataclass
class StepBatch:
    """Device tensors of one step; rows past ``rows`` are padding (scratch slot)."""

    slots: torch.Tensor  # (bucket,) int64 arena rows
    mel: torch.Tensor  # (bucket, frames, mels) model dtype
    valid: torch.Tensor  # (bucket,) int64 real mel frames after the lead
    final: torch.Tensor  # (bucket,) bool
    lead: torch.Tensor  # (bucket,) int64
    prompt: torch.Tensor  # (bucket,) int64
    frame_offset: torch.Tensor  # (bucket,) int64
    rows: int  # real rows
    any_final: bool  # host-side: some row is final (such steps run eagerly)
    any_lead: bool = False  # host-side: some row is a segment's first chunk (such steps run eagerly)
    slot_ids: tuple[int, ...] = ()  # host-side copy of the real rows' slots
    row_range: slice | None = None  # the same slots as a slice when they are consecutive and nothing is
    # padded: the eager body then reads and writes arena views instead of gathered copies

    @property
    def bucket(self) -> int:
        return self.slots.shape[0]

    @property
    def frames(self) -> int:
        return self.mel.shape[1]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.slots, self.mel, self.valid, self.final, self.lead, self.prompt, self.frame_offset)


def make_batch(rows: list[Row], frames: int, bucket: int, mels: int, device: torch.device | str,
               dtype: torch.dtype, frontend: LogMel | None = None) -> StepBatch:
    """Pack rows into static-shape device tensors. Feature rows are packed where their frames are
    (the device for offline features) and copied once; sample rows (``frontend`` needed) are packed
    on the host, copied once (pinned, asynchronously, on CUDA) and turned into mel frames there."""
    if not rows or bucket < len(rows):
        raise ValueError(f"{len(rows)} rows do not fit a bucket of {bucket}")
    for i, r in enumerate(rows):
        if r.lead + r.valid > frames:
            raise ValueError(f"row {i}: {r.lead} lead + {r.valid} frames exceed the step's {frames}")
    pad = bucket - len(rows)
    pin = torch.device(device).type == "cuda"
    ints = torch.tensor([[r.slot for r in rows] + [SCRATCH] * pad, [r.valid for r in rows] + [0] * pad,
                         [r.lead for r in rows] + [0] * pad, [r.prompt for r in rows] + [0] * pad,
                         [r.frame_offset for r in rows] + [0] * pad,
                         [int(r.final) for r in rows] + [0] * pad], dtype=torch.long)
    ints = (ints.pin_memory() if pin else ints).to(device, non_blocking=True)
    valid, lead = ints[1], ints[2]
    if rows[0].mel is None:
        if frontend is None:
            raise ValueError("rows of samples need the front end")
        mel = batch_features(frontend, [r.audio for r in rows], [r.lead for r in rows], frames, bucket,
                             valid, lead, pin).to(dtype)
    else:
        mel = torch.zeros(bucket, frames, mels, device=rows[0].mel.device, dtype=rows[0].mel.dtype)
        for i, r in enumerate(rows):
            mel[i, r.lead:r.lead + len(r.mel)] = r.mel
        mel = mel.to(device, dtype, non_blocking=True)
    return StepBatch(slots=ints[0], mel=mel, valid=valid, final=ints[5].bool(), lead=lead, prompt=ints[3],
                     frame_offset=ints[4], rows=len(rows), any_final=any(r.final for r in rows),
                     any_lead=any(r.lead for r in rows), slot_ids=tuple(r.slot for r in rows),
                     row_range=consecutive([r.slot for r in rows], bucket))


def batch_features(frontend: LogMel, audio: list[FrameAudio], leads: list[int], frames: int, bucket: int,
                   valid: torch.Tensor, lead: torch.Tensor, pin: bool = False) -> torch.Tensor:
    """One STFT and mel projection for every row of a step, on the front end's device: row i's
    samples go where its first real frame (after ``leads[i]`` lead frames) reads; frames outside
    [lead, lead + valid) are zero, as in a packed feature batch. Returns (bucket, frames, mels) float32."""
    cfg = frontend.config
    host = torch.zeros(bucket, cfg.n_fft + cfg.hop_length * (frames - 1), pin_memory=pin)
    rows = host.numpy()
    for i, (a, at) in enumerate(zip(audio, leads)):
        rows[i, at * cfg.hop_length:at * cfg.hop_length + a.samples.size] = a.samples
    return device_features(frontend, host.to(frontend.filterbank.device, non_blocking=True), valid, lead)


def device_features(frontend: LogMel, y: torch.Tensor, valid: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
    """The device half of ``batch_features`` (no host reads, static shapes): log-mel frames of the
    packed samples ``y`` (bucket, n_fft + hop*(frames-1)), zero outside [lead, lead + valid)."""
    feats = frontend.frames(y)
    index = torch.arange(feats.shape[1], device=y.device)[None, :]
    keep = (index >= lead[:, None]) & (index < (lead + valid)[:, None])
    return torch.where(keep[..., None], feats, torch.zeros((), device=y.device))


def consecutive(slots: list[int], bucket: int) -> slice | None:
    first = slots[0]
    if len(slots) == bucket and slots == list(range(first, first + len(slots))):
        return slice(first, first + len(slots))
    return None
