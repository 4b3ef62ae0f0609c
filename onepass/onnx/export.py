"""Export a loaded model to ONNX: sherpa-onnx files and onepass's ONNX Runtime backend graph.

Files written to the output directory:

* ``encoder.onnx``, ``decoder.onnx``, ``joiner.onnx``, ``tokens.txt``: the sherpa-onnx NeMo
  streaming transducer contract (one encoder per chunk size; metadata window_size, chunk_shift,
  cache dims, pred_rnn_layers, pred_hidden, vocab_size, prompt_dictionary, ...). Run them with
  ``sherpa_onnx.OnlineRecognizer.from_transducer(encoder, decoder, joiner, tokens, ...)``.
* ``onepass_core.onnx``: the conformer stack for ``--backend onnxruntime`` (any chunk size).
* ``onepass_onnx.json``: what was exported (source model, chunk size, quantization).

Large graphs (> 2 GB protobuf limit) keep their weights in ``<name>.onnx.data`` next to them.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..errors import OnePassError
from ..model.config import ENCODER_FRAME_MS
from ..model.linear import Linear
from ..recognizer import Recognizer
from .graphs import PER_LAYER, PER_LAYER_OUT, LayerwiseCore, SherpaDecoder, SherpaEncoder, SherpaJoiner

OPSET = 17
QUANTIZE = ("none", "int8", "int4")
INT8_WEIGHTS = ("u8", "s7", "s8")
EXTERNAL_DATA_BYTES = 1_500_000_000  # above this, weights go to a .data file (protobuf limit 2 GB)
CORE_FILE = "onepass_core.onnx"
CORE_FORMAT = 2  # 2: per-layer cache inputs/outputs (LayerwiseCore); 1 had stacked caches
MANIFEST = "onepass_onnx.json"


@dataclass(frozen=True)
class ExportSettings:
    chunk_ms: int | None = None  # sherpa encoder chunk size (ms); None: the model's default
    quantize: str = "none"  # none | int8 | int4: encoder and prompt MLP weights; the sherpa joiner gets int8 with either
    int4_block_size: int | None = None  # MatMulNBits weights per scale; None: default_int4_block (16 or 32)
    int8_weights: str = "s7"  # s7 or u8 (safe on every x86), s8 (only with VNNI / on ARM); see _quantize_int8
    sherpa: bool = True  # write encoder/decoder/joiner/tokens.txt for sherpa-onnx
    core: bool = True  # write onepass_core.onnx for the onepass backend

    def resolved(self, hidden_size: int) -> ExportSettings:
        """These settings with the int4 block size filled in for an encoder of this width."""
        if self.int4_block_size is not None:
            return self
        return replace(self, int4_block_size=default_int4_block(hidden_size))


def default_int4_block(hidden_size: int) -> int:
    """32 weights per scale, 16 for encoders narrower than 512 (measured,
    docs/history/benchmarks-log-2026-12.md): on the demo model (d 144, rows of 144-864 weights) block 16
    halves int4's WER cost (+1.7 -> +0.9 points) for 10 %
    more bytes; on the real model (d 1024) block 16 would make the file ~445 MB instead of ~370 MB and every
    memory-bound single-stream step read those bytes, for rows 1024-4096 wide."""
    return 16 if hidden_size < 512 else 32


@dataclass(frozen=True)
class ExportResult:
    out_dir: str
    files: dict[str, int]  # file name -> bytes (graph + external data)
    chunk_ms: int
    quantize: str


def export_onnx(asr: Recognizer, out_dir: str | Path, settings: ExportSettings = ExportSettings()) -> ExportResult:
    """Write the ONNX files for ``asr`` into ``out_dir`` (created); returns their sizes."""
    if settings.quantize not in QUANTIZE:
        raise OnePassError(f"unknown quantization {settings.quantize!r}; use one of {', '.join(QUANTIZE)}")
    model = asr.model
    settings = settings.resolved(model.config.encoder.hidden_size)
    if model.joint.head.weight.dtype != torch.float32 or model.joint.head.weight.device.type != "cpu":
        raise OnePassError("ONNX export needs the model in float32 on the CPU (--dtype float32 --device cpu)")
    r = asr.config.right_context_for_chunk_ms(settings.chunk_ms)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    # trace the dense weights: oneDNN-prepacked Linear layers are an opaque op to the tracer
    packed = [m for m in model.modules() if isinstance(m, Linear) and m._packed is not None]
    for m in packed:
        m.unpack()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints that are constant per graph
            if settings.sherpa:
                files += _export_sherpa(asr, r, out, settings)
            if settings.core:
                files += _export_core(asr, out, settings)
    finally:
        for m in packed:
            m.prepack()
    # the chunk size the sherpa encoder was made for (settings.chunk_ms may be None: the default)
    manifest = {"source": asr.info.source, "name": asr.info.name, **asdict(settings),
                "chunk_ms": (r + 1) * ENCODER_FRAME_MS, "right_context": r, "fingerprint": fingerprint(model)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    sizes = {f: _size(out / f) for f in files}
    return ExportResult(str(out), sizes, (r + 1) * ENCODER_FRAME_MS, settings.quantize)


def fingerprint(model) -> str:
    """A short hash of a few weight tensors: tells whether an export came from these weights."""
    import hashlib

    h = hashlib.sha256()
    for t in (model.joint.head.weight, model.encoder.layers[0].self_attn.q_proj.weight,
              model.encoder.layers[-1].feed_forward2.linear2.weight):
        h.update(t.detach().reshape(-1)[:4096].float().numpy().tobytes())
    return h.hexdigest()[:16]


def _size(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


# ---- sherpa-onnx ------------------------------------------------------------------------
def _export_sherpa(asr: Recognizer, r: int, out: Path, settings: ExportSettings) -> list[str]:
    model = asr.model
    cfg = model.config
    enc = SherpaEncoder(model, r).eval()
    lay = enc.layout
    b = 2
    inputs = (torch.zeros(b, cfg.encoder.input_size, enc.window), torch.full((b,), enc.window, dtype=torch.long),
              torch.zeros(b, *lay.channel_dims), torch.zeros(b, *lay.time_dims), torch.zeros(b, dtype=torch.long))
    names = ["audio_signal", "length", "cache_last_channel", "cache_last_time", "cache_last_channel_len"]
    if cfg.has_prompt:
        inputs += (torch.zeros(b, dtype=torch.long),)
        names.append("prompt_index")
    out_names = ["outputs", "encoded_lengths", "cache_last_channel_next", "cache_last_time_next",
                 "cache_last_channel_next_len"]
    meta = {
        "model_type": "EncDecRNNTBPEModel", "version": "2", "model_author": "onepass",
        "vocab_size": cfg.vocab_size - 1,  # NeMo convention: without the blank
        "window_size": enc.window, "chunk_shift": enc.window,
        "subsampling_factor": cfg.encoder.subsampling_factor, "feat_dim": cfg.encoder.input_size,
        "normalize_type": "", "pred_rnn_layers": cfg.pred_layers, "pred_hidden": cfg.pred_hidden,
        "cache_last_channel_dim1": lay.channel_dims[0], "cache_last_channel_dim2": lay.channel_dims[1],
        "cache_last_channel_dim3": lay.channel_dims[2], "cache_last_time_dim1": lay.time_dims[0],
        "cache_last_time_dim2": lay.time_dims[1], "cache_last_time_dim3": lay.time_dims[2],
        "chunk_ms": (r + 1) * ENCODER_FRAME_MS, "right_context": r, "left_context": cfg.encoder.left_context,
        "onepass_state_layout": "keys|values in cache_last_channel; conv|pending|mel carry in cache_last_time",
    }
    if cfg.has_prompt:
        meta["is_multilingual"] = 1
        meta["prompt_dictionary"] = json.dumps(cfg.prompt_dictionary, sort_keys=True)
        if "auto" in cfg.prompt_dictionary:
            meta["auto_prompt_id"] = cfg.prompt_dictionary["auto"]
    dyn = {n: {0: "batch"} for n in names + out_names}
    _export(enc, inputs, out / "encoder.onnx", names, out_names, dyn, meta, settings.quantize, settings)
    h = torch.zeros(cfg.pred_layers, b, cfg.pred_hidden)
    _export(SherpaDecoder(model).eval(),
            (torch.zeros(b, 1, dtype=torch.int32), torch.ones(b, dtype=torch.int32), h, h.clone()),
            out / "decoder.onnx", ["targets", "target_length", "states_h", "states_c"],
            ["outputs", "prednet_lengths", "states_h_next", "states_c_next"],
            {"targets": {0: "batch"}, "target_length": {0: "batch"}, "states_h": {1: "batch"},
             "states_c": {1: "batch"}, "outputs": {0: "batch"}, "prednet_lengths": {0: "batch"},
             "states_h_next": {1: "batch"}, "states_c_next": {1: "batch"}},
            {"vocab_size": cfg.vocab_size - 1, "pred_rnn_layers": cfg.pred_layers, "pred_hidden": cfg.pred_hidden},
            "none", settings)
    _export(SherpaJoiner(model).eval(),
            (torch.zeros(b, cfg.encoder.hidden_size, 1), torch.zeros(b, cfg.pred_hidden, 1)),
            out / "joiner.onnx", ["encoder_outputs", "decoder_outputs"], ["outputs"],
            {"encoder_outputs": {0: "batch"}, "decoder_outputs": {0: "batch"}, "outputs": {0: "batch"}},
            {"vocab_size": cfg.vocab_size - 1}, "none" if settings.quantize == "none" else "int8", settings)
    _write_tokens(asr, out / "tokens.txt")
    return ["encoder.onnx", "decoder.onnx", "joiner.onnx", "tokens.txt"]


def _write_tokens(asr: Recognizer, path: Path) -> None:
    pieces = list(asr.tokenizer.pieces)
    blank = asr.config.blank_id
    if blank != len(pieces) - 1:
        raise OnePassError("sherpa-onnx needs the blank token last in the vocabulary")
    lines = []
    for i, piece in enumerate(pieces):
        piece = "<blk>" if i == blank else (piece or f"<unused{i}>")
        lines.append(f"{piece.replace(' ', chr(0x2581))} {i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---- onepass backend ---------------------------------------------------------------------
def _export_core(asr: Recognizer, out: Path, settings: ExportSettings) -> list[str]:
    from .graphs import block_inputs

    model = asr.model
    cfg = model.config
    e = cfg.encoder
    b, t = 2, 4
    n, h, hd, left, d = e.num_layers, e.num_heads, e.head_dim, e.left_context, e.hidden_size
    valid = torch.tensor([t, t - 1])
    cache_len = torch.tensor([left, 3])
    positions, rel_index, mask, row_valid = block_inputs(model, t, 0, valid, cache_len)
    kv = torch.zeros(b, h, left, hd)
    per_layer = {"keys": kv, "values": kv, "conv": torch.zeros(b, d, e.conv_kernel_size - 1)}
    inputs = [torch.zeros(b, t, d), valid, rel_index, mask, row_valid]
    names = ["x", "valid", "rel_index", "mask", "row_valid"]
    dyn = {"x": {0: "batch", 1: "time"}, "valid": {0: "batch"}, "rel_index": {0: "time", 1: "keys"},
           "mask": {0: "batch", 2: "time", 3: "keys"}, "row_valid": {0: "batch", 1: "time"},
           "enc": {0: "batch", 1: "time"}, "proj": {0: "batch", 1: "time"}}
    for name in PER_LAYER:
        for i in range(n):
            inputs.append(positions[i] if name == "positions" else per_layer[name].clone())
            names.append(f"{name}_{i}")
            dyn[f"{name}_{i}"] = {2: "distances"} if name == "positions" else {0: "batch"}
    if cfg.has_prompt:
        inputs.append(torch.zeros(b, dtype=torch.long))
        names.append("prompt")
        dyn["prompt"] = {0: "batch"}
    out_names = ["enc", "proj"] + [f"{name}_{i}" for name in PER_LAYER_OUT for i in range(n)]
    dyn.update({name: {0: "batch"} for name in out_names[2:]})
    meta = {"onepass_graph": "encoder_core", "onepass_core_format": CORE_FORMAT, "left_context": left,
            "num_layers": n}
    _export(LayerwiseCore(model).eval(), tuple(inputs), out / CORE_FILE, names, out_names, dyn, meta,
            settings.quantize, settings)
    return [CORE_FILE]


# ---- shared ------------------------------------------------------------------------------
def _export(module, inputs, path: Path, names, out_names, dynamic_axes, meta: dict, quantize: str,
            settings: ExportSettings) -> None:
    import onnx

    big = _module_bytes(module) > EXTERNAL_DATA_BYTES
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        torch.onnx.export(module, inputs, str(raw), input_names=names, output_names=out_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)
        if quantize != "none":
            logging.disable(logging.WARNING)  # the quantizers log every node they skip
            try:
                raw = (_quantize_int8(raw, Path(tmp), settings.int8_weights, big) if quantize == "int8"
                       else _quantize_int4(raw, Path(tmp), settings.int4_block_size, big, settings.int8_weights))
            finally:
                logging.disable(logging.NOTSET)
        proto = onnx.load(str(raw))
        del proto.metadata_props[:]
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)
        _save(proto, path)


def _save(proto, path: Path) -> None:
    import onnx

    data = path.with_name(path.name + ".data")
    for p in (path, data):
        if p.exists():
            p.unlink()
    if _proto_bytes(proto) > EXTERNAL_DATA_BYTES:
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data.name, size_threshold=1024)
    else:
        onnx.save_model(proto, str(path))


def _module_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def _proto_bytes(proto) -> int:
    """Size of the weights (ByteSize() itself fails past the 2 GB protobuf limit)."""
    total = 0
    for t in proto.graph.initializer:
        total += len(t.raw_data) + 4 * (len(t.float_data) + len(t.int32_data)) + 8 * len(t.int64_data)
    return total


def _quantize_int8(raw: Path, tmp: Path, weights: str, big: bool) -> Path:
    """Dynamic 8-bit, per-channel weights, for every MatMul with a constant weight (the encoder's
    linears, including the conformer's pointwise convs, which onepass already runs as GEMMs).

    Activations are uint8. Signed weights go through u8 x s8 kernels that, on x86 without VNNI
    (AVX2), add pairs of products in saturating int16: with full 8-bit weights (s8) that wrecks
    per-channel weights (measured here, AMD EPYC AVX2: encoder output error 117% vs 7.5% with u8
    weights on a tiny model). s7 (the default) keeps signed weights to 7 bits (ONNX Runtime's
    reduce_range), so a pair of products (255 x 64 x 2) cannot saturate; u8 weights take u8 x u8
    kernels, which widen to int16 first: 3-23% slower here, with 40% less weight error
    (docs/history/benchmarks-log-2026-12.md). s7 and u8 are safe on every x86; s8 is for VNNI (AVX-512
    VNNI / AVX-VNNI) and ARM."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if weights not in INT8_WEIGHTS:
        raise OnePassError(f"int8 weights must be one of {', '.join(INT8_WEIGHTS)}, not {weights!r}")
    dst = tmp / "int8.onnx"
    quantize_dynamic(str(raw), str(dst), per_channel=True, reduce_range=weights == "s7",
                     weight_type=QuantType.QUInt8 if weights == "u8" else QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True},
                     use_external_data_format=big)
    return dst


def _quantize_int4(raw: Path, tmp: Path, block_size: int, big: bool, int8_weights: str) -> Path:
    """4-bit MatMulNBits (symmetric, per block), accuracy level 4 (int8 activations on CPU), for the
    conformer layers' MatMuls; the few matrices outside the layers (subsampling output projection, prompt
    MLP, encoder projector: 5 M of the real model's 600 M weights) get int8 (``_quantize_int8``). Nothing
    after them absorbs their rounding (the projector feeds the joint, the prompt is added to every frame):
    on the demo model int8 there takes about 0.9 points off int4's WER cost
    (docs/history/benchmarks-log-2026-12.md)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(raw))
    consts = {t.name for t in model.graph.initializer}
    outside = [n.name for n in model.graph.node
               if n.op_type == "MatMul" and n.input[1] in consts and "/layers." not in n.name]
    q = MatMulNBitsQuantizer(model, block_size=block_size, is_symmetric=True, accuracy_level=4,
                             nodes_to_exclude=outside)
    q.process()
    dst = tmp / "int4.onnx"
    q.model.save_model_to_file(str(dst), use_external_data_format=big)
    return _quantize_int8(dst, tmp, int8_weights, big) if outside else dst
