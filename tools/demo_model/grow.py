"""Grow a trained demo model into a bigger one that computes the same function (or very nearly).

Used by ``train.py --init-from`` when the new config has wider feed-forward blocks or more layers than
the checkpoint (capacity for a model that under-fits its training set, without starting over):

- wider FF (``ff_mult``): the new hidden units get a fresh ``linear1`` row and a **zero** ``linear2``
  column, so the block's output is unchanged (exact);
- more layers: the old layers are spread evenly over the new depth (first and last stay first and last)
  and each inserted layer gets fresh weights with **zero** output projections in all four residual
  branches (FF1, attention, conv, FF2), so it only applies its final LayerNorm to its input. Its
  ``norm_out`` starts at the affine parameters of the layer below (``grow_state_dict``), then
  ``fit_inserted_norms_`` refits them per channel by least squares on real frames, so that the
  LayerNorm maps the (already normalised) output of the layer below back as close to itself as an affine
  LayerNorm can; not exact, measured by ``growth_error``.

Everything else (subsampling, prompt MLP, projectors, prediction net, joint) must have the same shapes.
"""

from __future__ import annotations

import torch

_ZERO_BRANCH_OUTPUTS = ("feed_forward1.linear2", "self_attn.o_proj", "conv.pointwise_conv2", "feed_forward2.linear2")


def layer_placement(old_layers: int, new_layers: int) -> list[int]:
    """New index of each old layer: evenly spread, first -> 0, last -> new_layers - 1."""
    if new_layers < old_layers:
        raise ValueError(f"cannot shrink {old_layers} layers to {new_layers}")
    if old_layers == 1:
        return [0]
    return [round(k * (new_layers - 1) / (old_layers - 1)) for k in range(old_layers)]


def _layer_keys(sd: dict, i: int) -> dict[str, torch.Tensor]:
    prefix = f"encoder.layers.{i}."
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def grow_state_dict(old: dict[str, torch.Tensor], new_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict for ``new_model`` (freshly initialised, bigger) that starts from ``old``."""
    new = {k: v.clone() for k, v in new_model.state_dict().items()}
    n_old = 1 + max(int(k.split(".")[2]) for k in old if k.startswith("encoder.layers."))
    n_new = 1 + max(int(k.split(".")[2]) for k in new if k.startswith("encoder.layers."))
    place = layer_placement(n_old, n_new)
    for k, v in old.items():
        if not k.startswith("encoder.layers."):
            if new[k].shape != v.shape:
                raise ValueError(f"{k}: {tuple(v.shape)} -> {tuple(new[k].shape)}; only FF width and depth can grow")
            new[k] = v.clone()
    for i_old, i_new in enumerate(place):
        for name, v in _layer_keys(old, i_old).items():
            key = f"encoder.layers.{i_new}.{name}"
            t = new[key]
            if t.shape == v.shape:
                t = v.clone()
            elif name.endswith("linear1.weight") or name.endswith("linear1.bias"):
                t[: v.shape[0]] = v  # old hidden units first; the new rows keep their fresh init
            elif name.endswith("linear2.weight"):
                t.zero_()
                t[:, : v.shape[1]] = v  # new hidden units start disconnected from the output
            else:
                raise ValueError(f"{key}: {tuple(v.shape)} -> {tuple(t.shape)}")
            new[key] = t
    kept = set(place)
    last_old = 0
    for i in range(n_new):
        if i in kept:
            last_old = i
            continue
        for branch in _ZERO_BRANCH_OUTPUTS:
            for p in ("weight", "bias"):
                key = f"encoder.layers.{i}.{branch}.{p}"
                if key in new:
                    new[key] = torch.zeros_like(new[key])
        for p in ("weight", "bias"):
            new[f"encoder.layers.{i}.norm_out.{p}"] = new[f"encoder.layers.{last_old}.norm_out.{p}"].clone()
        last_old = i
    return new


@torch.no_grad()
def fit_inserted_norms_(old_model, new_model, feats: torch.Tensor, mask: torch.Tensor, prompt_ids: torch.Tensor,
                        r: int = 13) -> None:
    """Least-squares per-channel gain and bias of each inserted layer's ``norm_out`` so that
    LayerNorm(y) ~= y, y = the output of the old layer below it on this batch (valid frames)."""
    n_old, n_new = len(old_model.encoder.layers), len(new_model.encoder.layers)
    place = layer_placement(n_old, n_new)
    outs: dict[int, torch.Tensor] = {}
    hooks = [layer.register_forward_hook(lambda mod, args, out, k=k: outs.__setitem__(k, out[0] if isinstance(out, tuple) else out))
             for k, layer in enumerate(old_model.encoder.layers)]
    was = old_model.training
    old_model.eval()
    enc = old_model.get_audio_features(input_features=feats, attention_mask=mask, prompt_ids=prompt_ids,
                                       num_lookahead_tokens=r).pooler_output
    old_model.train(was)
    for h in hooks:
        h.remove()
    valid = old_model.encoder._get_output_attention_mask(mask, target_length=enc.shape[1]).bool()
    below = 0
    for i in range(n_new):
        if i in place:
            below = place.index(i)
            continue
        norm = new_model.encoder.layers[i].norm_out
        y = outs[below][valid].double()  # [N, D]
        z = (y - y.mean(-1, keepdim=True)) / (y.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt()
        zc, yc = z - z.mean(0), y - y.mean(0)
        gain = (zc * yc).sum(0) / (zc * zc).sum(0)
        norm.weight.copy_(gain.float())
        norm.bias.copy_((y.mean(0) - gain * z.mean(0)).float())


@torch.no_grad()
def growth_error(old_model, new_model, feats: torch.Tensor, mask: torch.Tensor, prompt_ids: torch.Tensor,
                 r: int = 13) -> float:
    """Relative L2 difference of the two models' encoder outputs (joint input) on one batch."""
    outs = []
    for m in (old_model, new_model):
        was = m.training
        m.eval()
        outs.append(m.get_audio_features(input_features=feats, attention_mask=mask, prompt_ids=prompt_ids,
                                         num_lookahead_tokens=r).pooler_output)
        m.train(was)
    valid = old_model.encoder._get_output_attention_mask(mask, target_length=outs[0].shape[1]).bool()
    a, b = outs[0][valid], outs[1][valid]
    return float((a - b).norm() / a.norm())
