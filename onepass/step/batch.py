"""A bucketed batch with static shapes: what one step of one chunk size runs on.

Rows are streams (or padding up to the bucket size: the scratch slot, zero frames counted as
none valid; the body decodes nothing for them). Every tensor's shape depends only on (bucket, mel frames per row), so a
captured CUDA graph can replay the step on new data copied into the same tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
    """One stream's part of a step (host side)."""

    slot: int
    mel: torch.Tensor  # (n, mels) real mel frames, n <= the step's frames minus lead
    lead: int  # zero frames in front (factor - 1 on a segment's first chunk, else 0)
    final: bool  # the segment's last chunk (offline right padding, flush)
    prompt: int = 0  # language prompt slot (ignored by models without a prompt)
    frame_offset: int = 0  # stream frame of the segment's encoder frame 0


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
               dtype: torch.dtype) -> StepBatch:
    """Pack rows into one mel tensor where the rows' frames are (the host for the engine, the
    device for offline features) and copy to the device once (two copies per step)."""
    if not rows or bucket < len(rows):
        raise ValueError(f"{len(rows)} rows do not fit a bucket of {bucket}")
    mel = torch.zeros(bucket, frames, mels, device=rows[0].mel.device, dtype=rows[0].mel.dtype)
    for i, r in enumerate(rows):
        if r.lead + len(r.mel) > frames:
            raise ValueError(f"row {i}: {r.lead} lead + {len(r.mel)} frames exceed the step's {frames}")
        mel[i, r.lead:r.lead + len(r.mel)] = r.mel
    pad = bucket - len(rows)
    ints = torch.tensor([[r.slot for r in rows] + [SCRATCH] * pad, [len(r.mel) for r in rows] + [0] * pad,
                         [r.lead for r in rows] + [0] * pad, [r.prompt for r in rows] + [0] * pad,
                         [r.frame_offset for r in rows] + [0] * pad,
                         [int(r.final) for r in rows] + [0] * pad], dtype=torch.long).to(device, non_blocking=True)
    return StepBatch(slots=ints[0], mel=mel.to(device, dtype, non_blocking=True), valid=ints[1],
                     final=ints[5].bool(), lead=ints[2], prompt=ints[3], frame_offset=ints[4],
                     rows=len(rows), any_final=any(r.final for r in rows), any_lead=any(r.lead for r in rows),
                     slot_ids=tuple(r.slot for r in rows), row_range=consecutive([r.slot for r in rows], bucket))


def consecutive(slots: list[int], bucket: int) -> slice | None:
    first = slots[0]
    if len(slots) == bucket and slots == list(range(first, first + len(slots))):
        return slice(first, first + len(slots))
    return None
