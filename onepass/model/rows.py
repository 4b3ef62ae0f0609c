"""Rows of batch-first state tensors, for state kept in an arena of slots (``onepass.step``).

``rows`` is an index tensor (any slots, padding rows on a scratch slot: what a CUDA graph runs),
or a slice (slots that happen to be contiguous: views instead of copies, for the eager step).
"""

from __future__ import annotations

import torch

Rows = torch.Tensor | slice


def take(t: torch.Tensor, rows: Rows | None, dim: int = 0) -> torch.Tensor:
    """The rows of ``t`` (all of it for None)."""
    if rows is None:
        return t
    if isinstance(rows, slice):
        return t[(slice(None),) * dim + (rows,)]
    return t.index_select(dim, rows)


def put(t: torch.Tensor, rows: Rows, new: torch.Tensor, dim: int = 0) -> None:
    """Write ``new`` into the rows of ``t`` in place."""
    if isinstance(rows, slice):
        t[(slice(None),) * dim + (rows,)].copy_(new)
    else:
        t.index_copy_(dim, rows, new)
