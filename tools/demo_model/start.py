"""How a training run's weights start (train.py): a fresh init, the shipped HF directory, or an earlier
run's ckpt.pt (grown when the config has more layers or wider FF blocks). A resume from OUT/ckpt.pt is
onepass.training's (``Trainer.load_state_dict``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .build import ModelConfig, build_model_and_processor
from .grow import fit_inserted_norms_, grow_state_dict, growth_error

PROMPT_SLOT = {"en-US": 0, "es-ES": 2, "de-DE": 9}
AUTO_SLOT = 101  # "auto" in the real prompt dictionary (the model's default_prompt_id)


def init_weights_(model, feats: list[torch.Tensor]) -> None:
    """PyTorch's default init for every layer, then ``init_subsampling_``.

    transformers' N(0, 0.02) init makes the prompt MLP and the projectors shrink the encoder's signal at the
    joint to ~1 % of the prediction net's: the encoder then learns very slowly (first run, 2,400 steps with
    no acoustic learning). PyTorch's default init learns an order of magnitude faster on a 12-clip overfit.
    """
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.LSTM, torch.nn.Conv1d, torch.nn.Conv2d)):
                mod.reset_parameters()
        model.decoder.embedding.weight.normal_(0.0, 1.0)
        model.decoder.embedding.weight[model.config.blank_token_id].zero_()
    init_subsampling_(model, feats)


def init_subsampling_(model, feats: list[torch.Tensor]) -> None:
    """Re-initialise the subsampling stack so it trains from raw log-mels.

    transformers initialises every conv with N(0, 0.02): after three convs on raw (unnormalised, mean ~ -9)
    log-mels the ReLUs die and the subsampling output becomes a constant. Instead: PyTorch's default
    init, with a global feature normalisation (x - mean) / std folded into the first conv's weight and
    bias, and the output projection scaled so the (xscaled) encoder input has unit RMS. Only the init
    changes; the network is the same as the real model's (which also takes raw log-mels).
    """
    sub = model.encoder.subsampling
    sample = torch.cat([f.float() for f in feats[:200]])
    mu, sd = float(sample.mean()), float(sample.std())
    with torch.no_grad():
        for mod in sub.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                mod.reset_parameters()
        conv = sub.conv_in
        conv.weight.div_(sd)
        conv.bias.sub_(mu * conv.weight.sum(dim=(1, 2, 3)))
        x = torch.nn.utils.rnn.pad_sequence([f.float() for f in feats[:16]], batch_first=True)
        mask = (torch.arange(x.shape[1])[None] < torch.tensor([len(f) for f in feats[:16]])[:, None]).long()
        # Centre the projection: bias = -W @ E[features], so the time-varying part of the input dominates
        # (otherwise a constant vector swamps the first LayerNorm and the encoder learns very slowly).
        feats_in = []
        hook = sub.linear.register_forward_hook(lambda mod, args, out: feats_in.append(args[0]))
        sub(x, mask)
        hook.remove()
        valid = feats_in[0][model.encoder._get_output_attention_mask(mask, target_length=feats_in[0].shape[1]).bool()]
        sub.linear.bias.copy_(-sub.linear.weight @ valid.mean(0))
        h = sub(x, mask)
        h = h[0] if isinstance(h, tuple) else h
        rms = float((h * model.encoder.input_scale).pow(2).mean().sqrt())
        sub.linear.weight.div_(rms)
        sub.linear.bias.div_(rms)
    print(f"subsampling re-initialised (features mean {mu:.2f} std {sd:.2f}, output rms was {rms:.3f})", flush=True)


def init_output_priors_(model, ctc_head, labels: list[list[int]], enc_lengths: list[int]) -> None:
    """Start the CTC head's and the joint head's biases at the log-priors of the outputs.

    Root cause of the earlier "audio ignored" runs: at the start the fastest way to lower either loss is
    to predict the label/blank prior, which does not depend on the audio. With the output biases at 0,
    every layer of the encoder is pushed to emit one constant vector; in the failed run the branch outputs
    of every conformer block became >95 % constant over time and across clips and the dependence on the
    input shrank ~4x per layer (post-LN normalises the constant, crushing the audio part) - the encoder
    output became the same for every clip and the gradient that could have undone it vanished with it.
    Starting the biases at the prior removes that constant pull: on an 8-clip overfit the CTC loss with
    the true audio fell to 1.7 by step 40 (7.4 with swapped audio), against 2.3 vs 2.3 at step 120 without.
    CTC: blank share = 1 - labels/frames; RNN-T lattice: blank share = frames / (frames + labels).
    """
    V = model.config.vocab_size
    blank = model.config.blank_token_id
    counts = torch.ones(V)
    for lab in labels:
        counts += torch.bincount(torch.tensor(lab, dtype=torch.long), minlength=V).float()
    counts[blank] = 0.0
    unigram = counts / counts.sum()
    n_lab, n_frames = float(sum(len(x) for x in labels)), float(sum(enc_lengths))
    with torch.no_grad():
        if ctc_head is not None:
            p = unigram * (n_lab / n_frames)
            p[blank] = 1.0 - n_lab / n_frames
            ctc_head.bias.copy_(p.log())
        p = unigram * (n_lab / (n_frames + n_lab))
        p[blank] = n_frames / (n_frames + n_lab)
        model.joint.head.bias.copy_(p.log())
    print(f"output biases at the log-priors (labels/frame {n_lab / n_frames:.3f})", flush=True)


def per_language(rows: list[dict], start: int, stop: int) -> list[int]:
    """Indices of each language's clips ``start:stop`` (in manifest order), language by language."""
    return [i for lang in PROMPT_SLOT for i in [j for j, r in enumerate(rows) if r["lang"] == lang][start:stop]]


def check_idx_for(rows: list[dict]) -> list[int]:
    """Fixed clips for the audio-use check: the first 4 per language."""
    return per_language(rows, 0, 4)


def check_batch(feats, prompts, idx: list[int]):
    """(features, mask, prompt ids) of clips ``idx``, padded."""
    x = torch.nn.utils.rnn.pad_sequence([feats[i].float() for i in idx], batch_first=True)
    xl = torch.tensor([len(feats[i]) for i in idx])
    mask = (torch.arange(x.shape[1])[None] < xl[:, None]).long()
    return x, mask, torch.tensor([prompts[i] for i in idx])


def _needs_growth(old: dict[str, torch.Tensor], model) -> bool:
    return any(k not in old or old[k].shape != v.shape for k, v in model.state_dict().items())


def _grow_(old_model, model, rows: list[dict], feats: list[torch.Tensor], prompts: list[int], source) -> None:
    """``model`` (this run's bigger config) from ``old_model``: fresh weights for what is new, then
    grow.py's function-preserving placement and the LayerNorm refit of the inserted layers."""
    init_weights_(model, feats)  # fresh weights for what is new (the subsampling init is overwritten)
    model.load_state_dict(grow_state_dict(old_model.state_dict(), model))
    # 192 clips, not the check's (a corpus of a few clips: the check's)
    fit = per_language(rows, 4, 68) or check_idx_for(rows)
    fit_inserted_norms_(old_model, model, *check_batch(feats, prompts, fit))
    x, mask, pid = check_batch(feats, prompts, check_idx_for(rows))
    print(f"grown from {source}: {len(old_model.encoder.layers)} -> "
          f"{len(model.encoder.layers)} layers, FF {old_model.config.encoder_config.intermediate_size} -> "
          f"{model.config.encoder_config.intermediate_size}; encoder output changed by "
          f"{growth_error(old_model, model, x, mask, pid):.2%} (relative L2, 12 clips)", flush=True)


def init_from_hf_(directory: Path, model, spm_path: str, heads_only_steps: int, rows: list[dict],
                  feats: list[torch.Tensor], prompts: list[int]) -> None:
    """The shipped HF directory's weights; its tokenizer must be the run's. A config with more layers or
    wider FF blocks than the directory's grows it (grow.py), as from a ckpt.pt."""
    from safetensors.torch import load_file

    from .rebuild_spm import shipped_pieces, spm_pieces

    if spm_pieces(spm_path) != shipped_pieces(directory):
        raise SystemExit(f"{spm_path} is not the tokenizer of {directory}")
    weights = load_file(str(directory / "model.safetensors"))
    if _needs_growth(weights, model):
        from transformers import Nemotron3_5AsrForRNNT

        _grow_(Nemotron3_5AsrForRNNT.from_pretrained(directory).eval(), model, rows, feats, prompts, directory)
    else:
        model.load_state_dict(weights)  # strict: the same architecture
    print(f"initialised from the HF directory {directory} (fresh CTC / phoneme heads, trained alone "
          f"for {heads_only_steps} steps)", flush=True)


def init_from_ckpt_(path: Path, model, ctc_head, phone_head, phone_names: list[str], rows: list[dict],
                    feats: list[torch.Tensor], prompts: list[int], spm_path: str) -> None:
    """An earlier run's ckpt.pt: its weights and heads (phoneme rows matched by name), grown first when
    this run's model has more layers or wider FF blocks (grow.py)."""
    ck = torch.load(path, weights_only=False, map_location="cpu")
    if _needs_growth(ck["model"], model):
        old_cfg = json.loads((path.parent / "config.json").read_text())["model"]
        old_model, _ = build_model_and_processor(ModelConfig(**old_cfg), spm_path)
        old_model.load_state_dict(ck["model"])
        _grow_(old_model.eval(), model, rows, feats, prompts, path.parent)
    else:
        model.load_state_dict(ck["model"])
    heads = ck.get("objective", ck)  # onepass.training's ckpt.pt keeps the heads with the objective
    if ctc_head is not None:
        ctc_head.load_state_dict(heads["ctc"])
    if phone_head is not None:
        old = {n: k for k, n in enumerate(json.loads((path.parent / "phones.json").read_text()))}
        with torch.no_grad():  # rows by phoneme name; a phoneme new to this corpus keeps its fresh row
            for k, n in enumerate(phone_names):
                if n in old:
                    phone_head.weight[k] = heads["phone"]["weight"][old[n]]
                    phone_head.bias[k] = heads["phone"]["bias"][old[n]]
        print(f"phoneme head: {sum(n in old for n in phone_names)} of {len(phone_names)} rows from "
              f"{path.parent}", flush=True)
    print(f"initialised from {path} (its step {ck['step']})", flush=True)
