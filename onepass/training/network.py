"""The network being trained: transformers' Nemotron 3.5 RNN-T (the reference implementation, with a
full-utterance forward under the chunked-limited mask of any right context), loaded from and saved to
the Hugging Face directory layout that onepass and transformers both read. onepass's own network
(``onepass.model``) is inference-only; ``recognizer_from`` puts the trained weights into it, the way
``onepass.load_model`` would, for validation."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import OnePassError

LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
HF_FILES = ("config.json", "generation_config.json", "model.safetensors", "processor_config.json",
            "tokenizer.json", "tokenizer_config.json")


@dataclass
class Trainable:
    """A model to fine-tune and everything needed to save it again."""

    model: torch.nn.Module  # transformers Nemotron3_5AsrForRNNT (or NemotronAsrStreamingForRNNT)
    processor: object  # transformers processor (feature extractor, tokenizer, prompt dictionary)
    source: Path  # the directory it came from
    right_contexts: tuple[int, ...]  # encoder frames of right context the model streams with
    has_prompt: bool

    @property
    def blank(self) -> int:
        return int(self.model.config.blank_token_id)

    @property
    def vocab(self) -> int:
        return int(self.model.config.vocab_size)

    @property
    def prompt_dictionary(self) -> dict[str, int]:
        return dict(getattr(self.processor, "prompt_dictionary", None) or {})


def _transformers():
    try:
        import transformers
    except ImportError:
        raise OnePassError("fine-tuning needs transformers: pip install 'onepass[train]'") from None
    return transformers


def resolve_source(source: str) -> Path:
    """'demo', an HF directory or a hub id -> a local HF directory."""
    from ..checkpoints.demo import demo_path
    from ..checkpoints.hub import fetch_from_hub, looks_like_hub_id

    if source == "demo":
        found = demo_path()
        if found is None:
            raise OnePassError("the demo model is not included in this installation")
        return found
    path = Path(source).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return path
    if path.suffix == ".nemo" or path.is_file():
        raise OnePassError(f"{path}: fine-tuning starts from a Hugging Face directory (config.json + "
                           "model.safetensors); convert the .nemo checkpoint with transformers' Nemotron 3.5 "
                           "converter, or use the model's hub id")
    if path.is_dir():
        raise OnePassError(f"{path} has no config.json: not a Hugging Face model directory")
    if looks_like_hub_id(source):
        found = fetch_from_hub(source)
        if found.is_dir():
            return found
        raise OnePassError(f"hub repository {source!r} holds only a .nemo file; fine-tuning needs the HF layout")
    raise OnePassError(f"model {source!r} not found: give an HF model directory, a hub id or 'demo'")


def load_trainable(source: str) -> Trainable:
    """Load a model directory for training (float32 weights, training mode)."""
    tf = _transformers()
    directory = resolve_source(source)
    try:
        model = tf.AutoModelForRNNT.from_pretrained(str(directory), dtype=torch.float32)
        processor = tf.AutoProcessor.from_pretrained(str(directory))
    except (OSError, ValueError, KeyError) as exc:
        raise OnePassError(f"cannot load {directory} for training: {exc}") from None
    rcs = getattr(processor, "supported_num_lookahead_tokens", None)
    if not rcs:
        rcs = [model.config.encoder_config.default_num_lookahead_tokens]
    left = model.config.encoder_config.sliding_window - 1
    bad = [r for r in rcs if left % (r + 1)]
    if bad:
        raise OnePassError(f"right contexts {bad} do not divide the left context {left}")
    has_prompt = hasattr(model, "prompt_projector")
    return Trainable(model.train(), processor, directory, tuple(sorted(int(r) for r in rcs)), has_prompt)


def chunk_ms_of(right_context: int) -> int:
    """Chunk size of a right context: r + 1 encoder frames of 80 ms."""
    return 80 * (right_context + 1)


LR_PARTS = ("encoder", "decoder", "joint", "prompt")  # what --lr-scale names


def _part(model: torch.nn.Module, name: str) -> list[torch.nn.Module]:
    """The modules of a part (none: "prompt" of an English-only model)."""
    names = {"encoder": ("encoder", "encoder_projector"), "decoder": ("decoder",), "joint": ("joint",),
             "prompt": ("prompt_projector",)}[name]
    return [m for m in (getattr(model, n, None) for n in names) if m is not None]


def parse_lr_scale(spec: str | None) -> dict[str, float]:
    """``--lr-scale``: comma-separated ``PART=FACTOR``, PART one of ``LR_PARTS``, FACTOR in (0, 10]."""
    scales: dict[str, float] = {}
    for item in (x.strip() for x in (spec or "").split(",") if x.strip()):
        name, _, value = (x.strip() for x in item.partition("="))
        try:
            factor = float(value)
        except ValueError:
            factor = float("nan")
        if name not in LR_PARTS or not 0.0 < factor <= 10.0:
            raise OnePassError(f"--lr-scale {spec!r}: use comma-separated PART=FACTOR, PART one of "
                               f"{', '.join(LR_PARTS)} and FACTOR in (0, 10], e.g. encoder=0.1,decoder=0.3")
        scales[name] = factor
    return scales


def param_groups(model: torch.nn.Module, spec: str | None) -> list[dict]:
    """The trainable parameters as optimizer groups, each with the ``lr_scale`` the loop multiplies the
    step's learning rate by (``parse_lr_scale``: "encoder" with its projection, "decoder" the prediction
    network, "joint", "prompt" the language prompt's projection); parts not named keep the full rate."""
    scales = parse_lr_scale(spec)
    groups, taken = [], set()
    for name, factor in scales.items():
        params = [p for m in _part(model, name) for p in m.parameters() if p.requires_grad]
        taken |= {id(p) for p in params}
        if params:
            groups.append({"params": params, "lr_scale": factor})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    return ([{"params": rest, "lr_scale": 1.0}] if rest else []) + groups


def freeze(model: torch.nn.Module, spec: str | None) -> list[str]:
    """Freeze parts of the network, a comma-separated list of: "subsampling", "encoder", K (the
    subsampling and the bottom K conformer layers), "decoder" (the prediction network: on a small text
    set it memorises the sentences' word order and forgets the language at large), "joint", "prompt"
    (the language prompt's projection). Returns the frozen module names."""
    if not spec:
        return []
    enc = model.encoder
    n_layers = len(enc.layers)
    parts: list[tuple[str, torch.nn.Module]] = []
    for item in (x.strip() for x in spec.split(",")):
        if item == "subsampling":
            parts.append(("encoder.subsampling", enc.subsampling))
        elif item == "encoder":
            parts.append(("encoder", enc))
        elif item in ("decoder", "joint", "prompt"):
            parts += [(item, m) for m in _part(model, item)]
        elif item.isdigit() and 0 <= int(item) <= n_layers:
            parts += [("encoder.subsampling", enc.subsampling)]
            parts += [(f"encoder.layers.{i}", enc.layers[i]) for i in range(int(item))]
        else:
            raise OnePassError(f"--freeze {spec!r}: use a comma-separated list of 'subsampling', 'encoder', "
                               f"'decoder', 'joint', 'prompt' and a number of bottom layers 0..{n_layers}")
    names: list[str] = []
    for name, module in parts:
        module.requires_grad_(False)
        if name not in names:
            names.append(name)
    return names


def add_language(trainable: Trainable, code: str, init_from: str = "auto") -> tuple[int, bool]:
    """The prompt slot of ``code``: its existing slot, or an unused one for a new locale (recorded in the
    processor's prompt dictionary, so the saved processor_config.json carries it). A new slot's input
    weights start as a copy of ``init_from``'s (the language-detecting "auto" slot by default), so the
    new locale starts from what the model does for an unknown language. Returns (slot, is_new)."""
    if not trainable.has_prompt:
        raise OnePassError("this model has no language prompt (English-only); drop --language")
    table = trainable.prompt_dictionary
    if code in table:
        return table[code], False
    lower = {k.lower().replace("_", "-"): v for k, v in table.items()}
    if code.lower().replace("_", "-") in lower:
        return lower[code.lower().replace("_", "-")], False
    if not LOCALE.match(code):
        raise OnePassError(f"--language {code!r} is not a locale code like 'el-GR' or 'szl-PL'")
    n = int(trainable.model.config.num_prompts)
    used = set(table.values()) | {int(trainable.model.config.default_prompt_id)}
    free = [s for s in range(n) if s not in used]
    if not free:
        raise OnePassError(f"all {n} prompt slots are in use; fine-tune an existing language instead")
    slot = free[0]
    src = table.get(init_from, int(trainable.model.config.default_prompt_id))
    w = trainable.model.prompt_projector.linear_1.weight
    d = w.shape[1] - n
    with torch.no_grad():
        w[:, d + slot] = w[:, d + src]
    table[code] = slot
    trainable.processor.prompt_dictionary = table
    return slot, True


def save_hf(trainable: Trainable, out_dir: Path, model: torch.nn.Module | None = None) -> None:
    """Write the HF directory (the layout of ``HF_FILES``) of ``model`` (default: the live one), in float32."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = trainable.model if model is None else model
    state = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    try:
        del model.config._name_or_path
    except AttributeError:
        pass
    model.save_pretrained(str(out_dir), state_dict=state, safe_serialization=True)
    trainable.processor.save_pretrained(str(out_dir))


def processor_dict(trainable: Trainable) -> dict:
    """processor_config.json as onepass reads it (feature extractor settings, chunk sizes, prompts)."""
    fe = trainable.processor.feature_extractor
    return {"feature_extractor": {k: getattr(fe, k) for k in ("feature_size", "sampling_rate", "hop_length",
                                                                "n_fft", "win_length", "preemphasis")
                                  if hasattr(fe, k)},
            "supported_num_lookahead_tokens": list(trainable.right_contexts),
            "prompt_dictionary": trainable.prompt_dictionary}


def recognizer_from(trainable: Trainable, tokenizer_json: Path, device: str | torch.device = "cpu",
                    model: torch.nn.Module | None = None):
    """An onepass ``Recognizer`` on a float32 copy of the trained weights (for validation)."""
    from ..checkpoints.hf import config_from_hf
    from ..checkpoints.weights import LoadedCheckpoint, build_model, to_onepass_names
    from ..recognizer import ModelInfo, Recognizer
    from ..tokenizer import Tokenizer

    model = trainable.model if model is None else model
    cfg = json.loads(model.config.to_json_string())
    config = config_from_hf(cfg, processor_dict(trainable), "finetune")
    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()}
    tok = Tokenizer.from_tokenizer_json(tokenizer_json, config.vocab_size, config.blank_id)
    net = build_model(LoadedCheckpoint(config, to_onepass_names(state, config), tok), "fine-tuned weights")
    net = net.to(device)
    net.frontend.float()
    net.encoder.clear_tables()
    return Recognizer(net, tok, ModelInfo("finetune", str(trainable.source), "hf", config.name))
