"""ONNX Runtime backend: the conformer stack runs in ONNX Runtime, the rest stays in torch.

``OrtModel`` stands in for ``NemotronASR`` wherever the engine, the state arenas and the model
step use a model: it has the same ``encode`` signature and hands every other attribute (config,
front end, subsampling, prediction net, joint, initial states) to the torch model. So offline
transcription, streaming sessions, the engine and the server run on it unchanged, with the same
per-stream state tensors (rows of the step's state arena, read by slot and written back in place).

Per call, the cache tensors are bound to ONNX Runtime by address (IOBinding): no copies in or
out, and the new caches land directly in torch tensors copied into the arena's rows. The position
projections, masks and index tables come from the torch model's per-block-length caches.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import OnePassError
from ..model.asr import NemotronASR
from ..model.encoder import EncoderState
from ..model.rows import put, take
from ..model.transducer import Joint, PredictionNet
from .export import CORE_FILE, CORE_FORMAT, MANIFEST
from .graphs import PER_LAYER, PER_LAYER_OUT, block_inputs

_NP = {torch.float32: np.float32, torch.int64: np.int64, torch.bool: np.bool_}


@dataclass(frozen=True)
class OrtSettings:
    threads: int | None = None  # intra-op threads; None: torch.get_num_threads()
    spin: bool = False  # let idle ORT threads spin (faster alone, wasteful on a shared machine)


def session_options(settings: OrtSettings):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = settings.threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spin else "0")
    return so


class OrtModel:
    """A ``NemotronASR`` whose encoder layers run in an ONNX Runtime session."""

    def __init__(self, model: NemotronASR, core_path: str | Path, settings: OrtSettings = OrtSettings()):
        import onnxruntime as ort

        if model.joint.head.weight.dtype != torch.float32 or model.joint.head.weight.device.type != "cpu":
            raise OnePassError("the onnxruntime backend runs float32 on the CPU (--dtype float32 --device cpu)")
        self.torch_model = model.eval()
        self.prepack()  # releases packed copies of weights ONNX Runtime now holds
        self.core_path = str(core_path)
        try:
            self.session = ort.InferenceSession(self.core_path, session_options(settings),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise OnePassError(f"cannot load {core_path}: {exc}") from None
        quantize = exported_quantization(Path(self.core_path).parent)
        self.backend = "onnxruntime" + ("" if quantize == "none" else f"-{quantize}")
        self.int8_decoder = quantize != "none" and self._int8_decoder(model)
        self._buffers = ReusedBuffers()
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._in_plan, self._out_plan = _plan(self._inputs, PER_LAYER), _plan(self._outputs, PER_LAYER_OUT)
        self._check(model)

    def _check(self, model: NemotronASR) -> None:
        meta = self.session.get_modelmeta().custom_metadata_map
        e = model.config.encoder
        if meta.get("onepass_graph") != "encoder_core":
            raise OnePassError(f"{self.core_path} is not an onepass encoder core graph")
        if meta.get("onepass_core_format") != str(CORE_FORMAT):
            raise OnePassError(f"{self.core_path} was exported by another onepass version; export it again "
                               "(`onepass export --format onnx`)")
        keys = self.session.get_inputs()[self._inputs.index("keys_0")].shape
        layers = sum(name.startswith("keys_") for name in self._inputs)
        want = [None, e.num_heads, e.left_context, e.head_dim]
        if ([k if isinstance(k, int) else None for k in keys] != want or layers != e.num_layers
                or ("prompt" in self._inputs) != model.config.has_prompt):
            raise OnePassError(f"{self.core_path} was exported from a different model "
                               f"({layers} layers, cache shape {keys})")

    def _int8_decoder(self, model: NemotronASR) -> bool:
        """Quantized encoders decode with their own copies of the prediction net and joint on
        dynamic int8 weights (torch's kernels: 3-5x faster than fp32 for the joint head, faster
        than ONNX Runtime's from 6 rows;
        docs/history/benchmarks-log-2026-12.md). Copies: the torch model stays fp32."""
        decoder, joint = PredictionNet(model.config), Joint(model.config)
        decoder.load_state_dict(model.decoder.state_dict())
        joint.load_state_dict(model.joint.state_dict())
        if not (decoder.quantize_int8() and joint.head.quantize_int8()):
            return False
        self.decoder, self.joint = decoder.eval(), joint.eval()
        return True

    # ---- what the engine and decoding use ---------------------------------------------------
    def __getattr__(self, name):
        return getattr(self.torch_model, name)

    def eval(self) -> "OrtModel":
        return self

    def release_encoder_weights(self) -> int:
        """Free the torch copies of the weights ONNX Runtime runs (conformer layers except the
        position projections, prompt MLP); only for a torch model nobody else uses. Returns the
        number of parameters freed.

        The modules are replaced by ``Released``, which raises if anything calls it: torch keeps
        only what it still runs (subsampling, position projections, encoder projection,
        prediction net, joint), so no code path can compute with a freed weight."""
        m = self.torch_model
        freed = 0
        if m.prompt_projector is not None:
            freed += _numel(m.prompt_projector)
            m.prompt_projector = Released("prompt_projector")
        for n, layer in enumerate(m.encoder.layers):
            attn = layer.self_attn
            for name, child in list(layer.named_children()):
                if child is not attn:
                    freed += _numel(child)
                    setattr(layer, name, Released(f"encoder.layers.{n}.{name}"))
            for name, child in list(attn.named_children()):
                if name != "relative_k_proj":
                    freed += _numel(child)
                    setattr(attn, name, Released(f"encoder.layers.{n}.self_attn.{name}"))
            for pname, p in list(attn.named_parameters(recurse=False)):  # bias_u, bias_v
                freed += p.numel()
                delattr(attn, pname)
        return freed

    def prepack(self) -> int:
        """oneDNN-prepack only the Linear layers torch still runs (subsampling output, joint head);
        the encoder layers run in ONNX Runtime, so their packed copies are released."""
        from ..model.linear import Linear

        m = self.torch_model
        used = {id(m.encoder.subsampling.linear), id(m.joint.head)}
        packed = 0
        for module in m.modules():
            if isinstance(module, Linear):
                if id(module) in used:
                    packed += module.prepack()
                else:
                    module.unpack()
        return packed

    @torch.no_grad()
    def encode(self, mel: torch.Tensor, mel_valid: torch.Tensor, final: torch.Tensor, state: EncoderState,
               right_context: int, prompt: torch.Tensor | None, lead: torch.Tensor | None = None,
               slots=None, steady: bool = False):
        """Same contract as ``NemotronASR.encode``; updates ``state`` (rows ``slots`` in place)."""
        m = self.torch_model
        cfg = m.config
        x, valid = m.encoder.subsampling(mel, mel_valid, final, state.subsampling, lead, slots, steady)
        b, t, _ = x.shape
        if t == 0:  # no new encoder frame (a final chunk of under 8 mel frames): nothing to run
            return (x.new_zeros(b, 0, cfg.encoder.hidden_size), x.new_zeros(b, 0, cfg.pred_hidden), valid)
        rows = (lambda s, dim: take(s, slots, dim))
        cache_len = rows(state.cache_len, 0)
        keys, values, conv = rows(state.keys, 1), rows(state.values, 1), rows(state.conv, 1)
        positions, rel_index, mask, row_valid = block_inputs(m, t, right_context, valid, cache_len)
        feeds = {"x": x, "valid": valid, "keys": keys, "values": values, "conv": conv,
                 "positions": positions, "rel_index": rel_index, "mask": mask, "row_valid": row_valid}
        if "prompt" in self._inputs:
            if prompt is None:
                raise ValueError("this model needs a prompt index per stream")
            feeds["prompt"] = prompt
        outs = {"enc": torch.empty(b, t, cfg.encoder.hidden_size), "proj": torch.empty(b, t, cfg.pred_hidden),
                "keys_next": self._buffers.take("keys", keys),  # stacked (N, B, ...): bound per layer
                "values_next": self._buffers.take("values", values),
                "conv_next": self._buffers.take("conv", conv)}
        self._run(feeds, outs)
        new_len = torch.clamp(cache_len + valid, max=cfg.encoder.left_context)
        frames = rows(state.frames, 0) + valid
        if slots is None:
            state.keys, state.values, state.conv = outs["keys_next"], outs["values_next"], outs["conv_next"]
            state.cache_len, state.frames = new_len, frames
        else:  # into the arena's rows; the output buffers are reused next call
            put(state.keys, slots, outs["keys_next"], 1)
            put(state.values, slots, outs["values_next"], 1)
            put(state.conv, slots, outs["conv_next"], 1)
            put(state.cache_len, slots, new_len)
            put(state.frames, slots, frames)
        return outs["enc"], outs["proj"], valid

    def _run(self, feeds: dict[str, torch.Tensor], outs: dict[str, torch.Tensor]) -> None:
        """Bind by address and run. ``PER_LAYER`` feeds and ``PER_LAYER_OUT`` outputs are stacked
        (N, ...) tensors; layer i binds the view t[i] (contiguous: N is the outer dimension)."""
        io = self.session.io_binding()
        keep = []  # contiguous copies must outlive the run
        for name, base, layer in self._in_plan:
            t = (feeds[base] if layer is None else feeds[base][layer]).contiguous()
            keep.append(t)
            io.bind_input(name, "cpu", 0, _NP[t.dtype], list(t.shape), t.data_ptr())
        for name, base, layer in self._out_plan:
            t = outs[base] if layer is None else outs[base][layer]
            io.bind_output(name, "cpu", 0, _NP[t.dtype], list(t.shape), t.data_ptr())
        self.session.run_with_iobinding(io)


class Released(torch.nn.Module):
    """Stands where a module was whose weights ONNX Runtime holds; calling it is a bug."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def forward(self, *args, **kwargs):
        raise RuntimeError(f"{self.name} runs in ONNX Runtime; its torch weights were released")


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _plan(names: list[str], per_layer: tuple[str, ...]) -> list[tuple[str, str, int | None]]:
    """(graph name, tensor key, layer or None) per graph input/output: ``keys_3`` -> ("keys", 3)."""
    plan = []
    for name in names:
        base, _, layer = name.rpartition("_")
        plan.append((name, base, int(layer)) if base in per_layer else (name, name, None))
    return plan


class ReusedBuffers:
    """Output buffers for the new caches, reused across calls. A fresh 80 MB cache tensor per
    step costs its page faults (glibc maps it anew each time): ~15 ms of a 6-stream step. A
    buffer this class handed out before is handed out again only when nothing else refers to it
    (reference count), so a caller that keeps an old state never sees it overwritten."""

    def __init__(self, keep: int = 3):
        self.keep = keep
        self.held: dict[str, list[torch.Tensor]] = {}
        probe = [torch.empty(0)]
        self.alone = sys.getrefcount(probe[0])  # the count of a tensor only ``held`` refers to

    def take(self, name: str, like: torch.Tensor) -> torch.Tensor:
        held = self.held.setdefault(name, [])
        for i in range(len(held)):
            if sys.getrefcount(held[i]) == self.alone and held[i].shape == like.shape and held[i].dtype == like.dtype:
                return held[i]
        fresh = torch.empty_like(like)
        held.append(fresh)
        del held[:-self.keep]
        return fresh


def core_path_for(onnx_dir: str | Path) -> Path:
    path = Path(onnx_dir) / CORE_FILE
    if not path.exists():
        raise OnePassError(f"{onnx_dir} has no {CORE_FILE}; make it with `onepass export --format onnx --out DIR`")
    return path


def exported_quantization(onnx_dir: str | Path) -> str:
    manifest = Path(onnx_dir) / MANIFEST
    if not manifest.exists():
        return "none"
    return json.loads(manifest.read_text()).get("quantize", "none")
