"""Kernel ceilings of this CPU: memory bandwidth and ONNX Runtime MatMul throughput per weight format.

A graph of 8 FFN blocks (MatMul 1024x4096, ReLU, MatMul 4096x1024; 256 MB fp32, more than the caches),
quantized like the encoder export (dynamic int8 with per-channel weights, s7 = signed 7-bit, the default,
and u8; MatMulNBits int4, block 32, accuracy level 4), timed at 1, 7, 12 and 84 rows (one stream at 80 ms,
one at 560 ms, 6 at 160 ms, 12 at 560 ms), with each format's error against fp32.

    python tools/bench/kernels.py --dir /tmp/onepass-kernels

Prints a table and one JSON object (GMAC/s = rows x 67.1M MACs / time; error = ||y - y_fp32|| / ||y_fp32||).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

K, N, BLOCKS = 1024, 4096, 8
FORMATS = ("fp32", "int8-s7", "int8-u8", "int4")  # fp32 first: the reference of the error column
ROWS = (1, 7, 12, 84)
MACS = BLOCKS * 2 * K * N


def build(d: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(BLOCKS):
        w1 = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
        w2 = (rng.standard_normal((N, K)) / np.sqrt(N)).astype(np.float32)
        inits += [numpy_helper.from_array(w1, f"w1_{i}"), numpy_helper.from_array(w2, f"w2_{i}")]
        nodes += [helper.make_node("MatMul", [prev, f"w1_{i}"], [f"h{i}"]),
                  helper.make_node("Relu", [f"h{i}"], [f"r{i}"]),
                  helper.make_node("MatMul", [f"r{i}", f"w2_{i}"], [f"y{i}"])]
        prev = f"y{i}"
    g = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", K])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["rows", K])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    d.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(d / "fp32.onnx"))
    quantize_dynamic(str(d / "fp32.onnx"), str(d / "int8-u8.onnx"), per_channel=True, weight_type=QuantType.QUInt8)
    quantize_dynamic(str(d / "fp32.onnx"), str(d / "int8-s7.onnx"), per_channel=True, reduce_range=True,
                     weight_type=QuantType.QInt8)
    q = MatMulNBitsQuantizer(onnx.load(str(d / "fp32.onnx")), block_size=32, is_symmetric=True, accuracy_level=4)
    q.process()
    q.model.save_model_to_file(str(d / "int4.onnx"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/onepass-kernels"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    import onnxruntime as ort
    import torch

    if not all((args.dir / f"{k}.onnx").exists() for k in FORMATS):
        build(args.dir)
    torch.set_num_threads(args.threads)
    res: dict = {"threads": args.threads, "load_start": os.getloadavg()}
    a = torch.empty(128 * 1024 * 1024).uniform_()  # 512 MB
    b = torch.empty_like(a)
    for name, fn, gb in (("sum", lambda: a.sum(), 0.537), ("copy", lambda: b.copy_(a), 1.074)):
        fn()
        res[f"bandwidth_{name}_GBps"] = round(gb / min(_times(fn, 5)), 1)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    rng = np.random.default_rng(0)
    xs = {rows: {"x": rng.standard_normal((rows, K)).astype(np.float32)} for rows in ROWS}
    ref = {}
    for k in FORMATS:
        s = ort.InferenceSession(str(args.dir / f"{k}.onnx"), so, providers=["CPUExecutionProvider"])
        for rows, x in xs.items():
            y = s.run(None, x)[0]
            ref.setdefault(rows, y)  # fp32 comes first
            t = float(np.median(_times(lambda: s.run(None, x), 7)))
            err = float(np.linalg.norm(y - ref[rows]) / np.linalg.norm(ref[rows]))
            res[f"{k}_rows{rows}"] = {"ms": round(1000 * t, 1), "GMACps": round(rows * MACS / t / 1e9, 1),
                                      "error": round(err, 3)}
    res["load_end"] = os.getloadavg()
    print("| weights | " + " | ".join(f"{r} rows" for r in ROWS) + " |")
    print("|---|" + "---|" * len(ROWS))
    for k in FORMATS:
        cells = [f"{res[f'{k}_rows{r}']['ms']} ms, {res[f'{k}_rows{r}']['GMACps']} GMAC/s" for r in ROWS]
        err = res[f"{k}_rows{ROWS[-1]}"]["error"]
        print(f"| {k} (error {100 * err:.1f}%) | " + " | ".join(cells) + " |")
    print(f"memory bandwidth (torch, {args.threads} threads): sum {res['bandwidth_sum_GBps']} GB/s, "
          f"copy {res['bandwidth_copy_GBps']} GB/s")
    print(json.dumps(res))


def _times(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


if __name__ == "__main__":
    main()
