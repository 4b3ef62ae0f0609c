"""Frame-level warm-start targets of the demo-model training (tools/demo_model/train.py) from the
espeak-ng word and phoneme times in the corpus manifests (make_corpus.py): a fixed CTC path of the word
pieces and a phoneme class per encoder frame, both aligned to the causal subsampling (encoder frame k
has heard mel frames up to 8 k)."""

from __future__ import annotations

import numpy as np
import torch


def frame_targets(pieces: list[str], words: list[list[float]] | None, n_frames: int, blank: int,
                  ids: list[int]) -> torch.Tensor | None:
    """A fixed CTC path [n_frames] from word times: the pieces of each word (a new word starts at a piece
    with the SentencePiece space mark) on consecutive frames ending at the first 80 ms frame that has heard
    the word's last voiced sample, blank elsewhere. None when the pieces do not split into the words or do not fit."""
    if words is None:
        return None
    groups: list[list[int]] = []
    for piece, i in zip(pieces, ids):
        if piece.startswith("\u2581") or not groups:
            groups.append([])
        groups[-1].append(i)
    if len(groups) != len(words):
        return None
    path = torch.full((n_frames,), blank, dtype=torch.long)
    last = -1
    for (_, end), g in zip(words, groups):
        # the causal subsampling's output frame k has heard mel frames up to 8 k: the first frame after the
        # word's end (measured: phoneme targets one frame later learn much faster than at frame k's centre)
        f_end = min(n_frames - 1, -(-int(round(end * 100)) // 8))
        for j, i in enumerate(g):
            f = max(last + 1, f_end - len(g) + 1 + j)
            if f >= n_frames:
                return None
            path[f] = i
            last = f
    return path


def phone_inventory(rows: list[dict]) -> list[str]:
    """"sil" first, then every espeak-ng phoneme of the training manifest (pauses "_..." excluded)."""
    names = {n for r in rows for _, n in (r.get("phones") or []) if not n.startswith("_")}
    return ["sil"] + sorted(names)


def frame_phones(phones: list[list] | None, words: list[list[float]] | None, n_frames: int,
                 index: dict[str, int]) -> torch.Tensor | None:
    """The phoneme class at the centre of the last 80 ms that each encoder frame has heard (frame k: mel
    frames 8 k - 7 ... 8 k, centre 80 k - 40 ms) [n_frames]: a phoneme lasts until the next
    one starts (the last one until the last word's voiced end); before the first, after the last, and in
    pauses: "sil" (0)."""
    if not phones or not words:
        return None
    starts = [float(t) for t, _ in phones]
    out = torch.zeros(n_frames, dtype=torch.long)
    end = float(words[-1][1])
    for k in range(n_frames):
        c = 0.08 * k - 0.04  # frame k has heard mel frames up to 8 k (causal subsampling): centre of the last 80 ms
        j = int(np.searchsorted(starts, c, side="right")) - 1
        if 0 <= j and c < end:
            name = phones[j][1]
            out[k] = 0 if name.startswith("_") else index.get(name, 0)
    return out


def pad_frame_targets(per_clip: list[torch.Tensor | None], batch: list[int], n_frames: int) -> torch.Tensor:
    """[B, n_frames] frame targets of the clips in ``batch``; -100 (ignored) where a clip has none or is shorter."""
    out = torch.full((len(batch), n_frames), -100, dtype=torch.long)
    for j, i in enumerate(batch):
        if per_clip[i] is not None:
            out[j, : len(per_clip[i])] = per_clip[i][:n_frames]
    return out
