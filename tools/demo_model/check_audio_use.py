"""Does a checkpoint use its audio? RNN-T loss on 8 training clips with their own audio vs. with each clip's
audio swapped for another clip's. Equal losses mean the encoder path is dead (the prediction net alone
models the text); a working model has a much higher loss with swapped audio.

    python tools/demo_model/check_audio_use.py /work/demo_corpus/run4
"""
import sys, json, torch
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parent))
from train import rnnt_forward
from transformers import AutoModelForRNNT
import sentencepiece as spm
torch.set_num_threads(1)
run=sys.argv[1]
m=AutoModelForRNNT.from_pretrained(run+'/hf_last'); m.eval()
f=torch.load(run+'/train_feats.pt')[:8]
rows=[json.loads(l) for l in open(sys.argv[2] if len(sys.argv) > 2 else '/work/demo_corpus/train.jsonl')][:8]
sp=spm.SentencePieceProcessor(model_file=run+'/demo_spm.model')
x=torch.nn.utils.rnn.pad_sequence([a.float() for a in f],batch_first=True)
L=torch.tensor([len(a) for a in f]); mask=(torch.arange(x.shape[1])[None]<L[:,None]).long()
lab=[sp.encode(r['text']) for r in rows]; y=torch.nn.utils.rnn.pad_sequence([torch.tensor(l) for l in lab],batch_first=True); yl=torch.tensor([len(l) for l in lab])
with torch.no_grad():
    rn,_=rnnt_forward(m,x,mask,torch.zeros(8,dtype=torch.long),y,yl,13)
    perm=torch.roll(torch.arange(8),1)
    rn2,_=rnnt_forward(m,x[perm],mask[perm],torch.zeros(8,dtype=torch.long),y,yl,13)
print('loss', rn.item(), 'mismatched audio', rn2.item())
