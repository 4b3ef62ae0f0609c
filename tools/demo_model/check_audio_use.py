"""Does a checkpoint use its audio?

1. RNN-T loss on 8 training clips with their own audio vs. with each clip's audio swapped for another
   clip's. Equal losses mean the encoder path is dead (the prediction net alone models the text); a
   working model has a much higher loss with swapped audio.
2. Collapse profile: the relative difference ||a - b|| / ||a|| between the outputs for two different clips
   (cut to the same length) after the subsampling, after each conformer layer and at the joint input.
   A collapsed encoder (the same output for every clip) shows it shrinking layer by layer towards 0.

    python -m tools.demo_model.check_audio_use /work/demo_corpus/run6 [MANIFEST]
"""
import json
import sys

import sentencepiece as spm
import torch
from transformers import AutoModelForRNNT

from onepass.training.objective import encode, rnnt_from_encoder


def rnnt_forward(model, x, mask, prompts, y, yl, r: int) -> torch.Tensor:
    """Mean RNN-T loss per label of a batch at right context r."""
    enc, enc_len = encode(model, x, mask, prompts, r)
    return rnnt_from_encoder(model, enc, enc_len, y, yl).sum() / yl.sum()


torch.set_num_threads(1)
run = sys.argv[1]
m = AutoModelForRNNT.from_pretrained(run + "/hf_last")
m.eval()
f = torch.load(run + "/train_feats.pt")[:8]
rows = [json.loads(line) for line in open(sys.argv[2] if len(sys.argv) > 2 else "/work/demo_corpus/train.jsonl")][:8]
sp = spm.SentencePieceProcessor(model_file=run + "/demo_spm.model")
x = torch.nn.utils.rnn.pad_sequence([a.float() for a in f], batch_first=True)
L = torch.tensor([len(a) for a in f])
mask = (torch.arange(x.shape[1])[None] < L[:, None]).long()
lab = [sp.encode(r["text"]) for r in rows]
y = torch.nn.utils.rnn.pad_sequence([torch.tensor(t) for t in lab], batch_first=True)
yl = torch.tensor([len(t) for t in lab])
with torch.no_grad():
    rn = rnnt_forward(m, x, mask, torch.zeros(8, dtype=torch.long), y, yl, 13)
    perm = torch.roll(torch.arange(8), 1)
    rn2 = rnnt_forward(m, x[perm], mask[perm], torch.zeros(8, dtype=torch.long), y, yl, 13)
print("loss", rn.item(), "mismatched audio", rn2.item())

outs: dict[str, list[torch.Tensor]] = {}


def hook(name):
    def f(mod, args, out):
        outs.setdefault(name, []).append((out[0] if isinstance(out, tuple) else out).detach())
    return f


m.encoder.subsampling.register_forward_hook(hook("subsampling"))
for i, layer in enumerate(m.encoder.layers):
    layer.register_forward_hook(hook(f"layer {i}"))
n = int(min(L[0], L[1]))
joint_in = []
for k in (0, 1):
    with torch.no_grad():
        joint_in.append(m.get_audio_features(input_features=f[k][:n].float()[None], attention_mask=torch.ones(1, n, dtype=torch.long),
                                             prompt_ids=torch.zeros(1, dtype=torch.long), num_lookahead_tokens=13).pooler_output)
outs["joint input"] = joint_in
print("clip-to-clip difference: " + ", ".join(f"{k} {float((a - b).norm() / a.norm()):.4f}" for k, (a, b) in outs.items()))
