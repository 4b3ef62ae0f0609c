"""Linear layers that can run CPU inference on oneDNN-prepacked weights.

Streaming multiplies a few rows (2-384: frames of a chunk times streams, offline blocks) by large
weight matrices. For those shapes MKL's SGEMM, which ``torch.nn.functional.linear`` uses on CPU,
reaches a fraction of the machine's throughput; oneDNN with the weight reordered once into its
blocked layout is faster (2-core AMD EPYC, 24 distinct 4096x1024 weights, 2 threads, shared
machine: 7 rows 1.8-3.4x, 96 rows 1.7x, 192 rows 1.35x, 384 rows 1.2x, 768 rows 0.94x). One row
(a GEMV) and larger blocks are as fast or faster on MKL, so those keep the dense path.

``NemotronASR.prepack`` packs; ``onepass.load_model`` does it by default for float32 on the CPU.
It keeps a second copy of each weight (the dense one stays for state dicts, export, other row
counts).

``int8_pack`` / ``int8_linear``: dynamic int8 (per-channel symmetric weights, activations
quantized per call) through torch's quantized CPU kernels. The quantized ONNX Runtime backends
run the joint and the prediction net this way: their weights are read once per decoding call
for a few rows, so memory traffic decides, and int8 reads a quarter of fp32's bytes (joint head
13088 x 640, one thread: fp32 13-20 ms per call, int8 3-6 ms;
docs/history/benchmarks-log-2026-12.md).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

PACKED_ROWS = (2, 384)  # row counts (inclusive) that take the prepacked path


def int8_pack(weight: torch.Tensor, bias: torch.Tensor | None):
    """Per-output-channel symmetric int8 weights packed for ``int8_linear``; None where this
    torch build has no quantized CPU kernels."""
    w = weight.detach().float().cpu()
    scales = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
    try:
        with warnings.catch_warnings():  # quantized tensors are deprecated upstream: None when they go
            warnings.simplefilter("ignore", UserWarning)
            qw = torch.quantize_per_channel(w, scales, torch.zeros(len(w), dtype=torch.long), 0, torch.qint8)
            return torch.ops.quantized.linear_prepack(qw, None if bias is None else bias.detach().float().cpu())
    except (RuntimeError, AttributeError, NotImplementedError):
        return None


def int8_linear(x: torch.Tensor, packed) -> torch.Tensor:
    """x (..., in) float32 -> (..., out); activations quantized per call to a 7-bit range, so that
    CPUs without VNNI, whose 8-bit multiply-adds can saturate, do not overflow."""
    shape = x.shape
    y = torch.ops.quantized.linear_dynamic(x.reshape(-1, shape[-1]).contiguous(), packed, True)
    return y.reshape(*shape[:-1], y.shape[-1])


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) with an optional prepacked inference path.

    The packed copy is used only for float32 CPU inputs without autograd, with a row count in
    ``PACKED_ROWS``, and only while the weight is the tensor that was packed, unchanged (its
    version counter): loading or editing weights silently falls back to the dense path."""

    _packed: torch.Tensor | None = None
    _packed_key: tuple[int, int] | None = None
    _int8 = None  # int8_pack result, see quantize_int8
    _int8_key: tuple[int, int] | None = None

    def prepack(self) -> bool:
        """Reorder the weight for oneDNN; False where this torch build or device cannot."""
        w = self.weight
        if w.device.type != "cpu" or w.dtype != torch.float32 or not torch.backends.mkldnn.is_available():
            self._packed = None
            return False
        try:
            self._packed = torch.ops.mkldnn._reorder_linear_weight(w.detach(), None)
        except (RuntimeError, AttributeError):  # an op missing from this build
            self._packed = None
            return False
        self._packed_key = self._weight_key()
        return True

    def _weight_key(self) -> tuple[int, int]:
        """Identifies the weight tensor and its contents: loading or editing weights changes it."""
        return self.weight.data_ptr(), self.weight._version

    def unpack(self) -> None:
        self._packed = self._packed_key = None

    def quantize_int8(self) -> bool:
        """Run inference as ``int8_linear`` from now on (replaces the oneDNN path); False where
        this torch build cannot. Like the packed path, edited weights fall back to dense."""
        self.unpack()
        self._int8 = int8_pack(self.weight, self.bias)
        self._int8_key = self._weight_key()
        return self._int8 is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self._int8 is not None and not torch.is_grad_enabled() and x.dtype == torch.float32
                and self._int8_key == self._weight_key()):
            return int8_linear(x, self._int8)
        packed = self._packed
        if packed is not None and not torch.is_grad_enabled() and x.dtype == torch.float32 and x.device.type == "cpu":
            rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
            if PACKED_ROWS[0] <= rows <= PACKED_ROWS[1] and self._packed_key == self._weight_key():
                return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, self.bias, "none", [], "")
        return nn.functional.linear(x, self.weight, self.bias)
