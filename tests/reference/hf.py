"""Tiny Hugging Face reference models and reference outputs for the onepass tests.

This module uses transformers (and sentencepiece / tokenizers) ONLY; it never imports onepass, so the
outputs it produces are an independent ground truth.

What it builds
--------------
* ``build_sentencepiece(dirpath)``: a tiny deterministic SentencePiece BPE model (``tiny_spm.model``) trained
  on fixed English / Spanish / German / French text, with language tags (``<en-US>``, ``<de-DE>``, ...) as
  user-defined symbols, ``<unk>`` = 0, ``<pad>`` = 1 and 256 byte-fallback pieces (like the real model).
* ``build_hf_model(dirpath, ...)``: a randomly initialised ``Nemotron3_5AsrForRNNT`` (or, with
  ``with_prompt=False``, the prompt-less English sibling ``NemotronAsrStreamingForRNNT``), whose joint blank
  bias is calibrated so greedy decoding emits ~1 token per 3 encoder frames, saved with ``save_pretrained``
  together with its processor, exactly as the real HF checkpoint directory is laid out:
  ``config.json, generation_config.json, model.safetensors, processor_config.json, tokenizer.json,
  tokenizer_config.json`` (plus ``tiny_spm.model``, the SentencePiece source, kept for the NeMo-style
  tests). The tokenizer is converted exactly like transformers' own ``convert_nemotron3_5_asr_to_hf.py``
  does it (``ParakeetConverter`` -> ``ParakeetTokenizer``, ``<blank>`` appended last, language tags marked
  special).
* ``make_test_audio`` / ``test_clips``: deterministic speech-like audio.
* ``hf_features`` / ``hf_offline`` / ``hf_streaming``: reference features, transcripts and encoder outputs.

HF behaviour notes (transformers 5.23) that the tests rely on
-------------------------------------------------------------
* Offline ``generate`` encodes the whole utterance once, with the ``chunked_limited`` attention mask of the
  chosen right context ``r`` (``num_lookahead_tokens``): chunks of ``r + 1`` frames, each frame sees its own
  chunk and ``left // (r + 1)`` chunks before it (``left = config.encoder_config.sliding_window - 1``).
  So "offline" is itself r-dependent.
* Greedy RNN-T loop (``ParakeetRNNTGenerationMixin``): decoder start symbol = blank (its embedding row is
  used as is; we zero it like NeMo). On blank: the frame pointer advances, the decoder (LSTM state and last
  prediction output) is NOT updated (all-blank fast path returns the cached output). On a non-blank token:
  the frame pointer stays, the next step runs the LSTM on that token. After ``max_symbols_per_step`` (10)
  consecutive non-blank tokens on one frame the pointer is forced to advance (the 10th token is kept).
  Nothing is reset at chunk boundaries in streaming: LSTM (h, c), last prediction output and last label
  carry over.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16000
HOP = 160

# Language tags put into the SentencePiece model as user-defined symbols (a subset of the real model's).
LANGUAGE_TAGS = (
    "<en-US>", "<en-GB>", "<es-ES>", "<es-US>", "<de-DE>", "<fr-FR>", "<it-IT>",
    "<pt-BR>", "<nl-NL>", "<pl-PL>", "<ru-RU>", "<ja-JP>", "<zh-CN>",
)

# Fixed training text (no external data). Mixed-language, punctuated, capitalised like the real transcripts.
_CORPUS = """\
The quick brown fox jumps over the lazy dog near the river bank.
Good morning, everyone. Today we will talk about speech recognition and streaming models.
Please call Stella and ask her to bring these things with her from the store.
Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.
We also need a small plastic snake and a big toy frog for the kids.
She can scoop these things into three red bags, and we will go meet her Wednesday at the train station.
When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow.
The weather is nice in Barcelona, isn't it? Yes, it is sunny and warm this afternoon.
I think that the meeting starts at nine o'clock, but I am not completely sure about it.
Numbers like one, two, three, four, five, six, seven, eight, nine and ten are easy to say.
El rápido zorro marrón salta sobre el perro perezoso cerca del río.
Buenos días a todos. Hoy vamos a hablar del reconocimiento de voz y de los modelos en tiempo real.
¿Dónde está la estación de tren? Está al final de la calle, a la derecha.
Me gustaría una taza de café con leche y un poco de pan, por favor.
La reunión empieza a las nueve, pero no estoy seguro de la hora exacta.
Mañana vamos a la playa con nuestros amigos y nuestras familias.
Der schnelle braune Fuchs springt über den faulen Hund am Ufer des Flusses.
Guten Morgen zusammen. Heute sprechen wir über Spracherkennung und Streaming-Modelle.
Wo ist der Bahnhof? Er ist am Ende der Straße, auf der rechten Seite.
Ich hätte gern eine Tasse Kaffee mit Milch und ein Stück Kuchen, bitte.
Die Besprechung beginnt um neun Uhr, aber ich bin mir nicht ganz sicher.
Morgen fahren wir mit unseren Freunden an den See und schwimmen im Wasser.
Größere Straßen führen über schöne Brücken in die Stadt.
Le renard brun rapide saute par-dessus le chien paresseux près de la rivière.
Bonjour à tous. Aujourd'hui, nous parlons de la reconnaissance vocale.
Où est la gare? Elle est au bout de la rue, à droite.
"""


# --------------------------------------------------------------------------------------------------------
# SentencePiece
# --------------------------------------------------------------------------------------------------------
def build_sentencepiece(
    dirpath,
    *,
    vocab_size: int | None = None,
    byte_fallback: bool = True,
    language_tags: bool = True,
    model_prefix: str = "tiny_spm",
) -> str:
    """Train a tiny deterministic SentencePiece BPE model; return the path of the ``.model`` file.

    Pieces: ``<unk>`` = 0, ``<pad>`` = 1 (control), the language tags (user-defined, only when
    ``language_tags``), the 256 ``<0xNN>`` byte pieces when ``byte_fallback``, then characters and merges.
    ``vocab_size`` defaults to 384 with byte fallback (the 256 byte pieces need room) and 160 without.
    ``<pad>`` is part of the SentencePiece vocabulary so that transformers' converter does not append it
    after the pieces; the blank then lands at id == number of pieces, as in the real checkpoint.
    """
    import sentencepiece as spm

    dirpath = Path(dirpath)
    dirpath.mkdir(parents=True, exist_ok=True)
    if vocab_size is None:
        vocab_size = 384 if byte_fallback else 160
    sentences = [line.strip() for line in _CORPUS.splitlines() if line.strip()]
    prefix = str(dirpath / model_prefix)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=prefix,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=1.0,
        byte_fallback=byte_fallback,
        user_defined_symbols=list(LANGUAGE_TAGS) if language_tags else [],
        unk_id=0,
        pad_id=1,
        bos_id=-1,
        eos_id=-1,
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        split_digits=False,
        minloglevel=2,
    )
    return prefix + ".model"


def _build_tokenizer(spm_path: str):
    """Convert a SentencePiece model the way transformers' Nemotron 3.5 converter does."""
    from tokenizers import AddedToken
    from transformers import ParakeetTokenizer
    from transformers.convert_slow_tokenizer import ParakeetConverter

    converted = ParakeetConverter(spm_path).converted()
    tok = ParakeetTokenizer(tokenizer_object=converted, clean_up_tokenization_spaces=False)
    if tok.convert_tokens_to_ids("<unk>") is None:
        tok.add_tokens([AddedToken("<unk>", normalized=False, special=True)])
    if tok.convert_tokens_to_ids("<pad>") is None:
        tok.add_tokens([AddedToken("<pad>", normalized=False, special=True)])
    tok.add_tokens([AddedToken("<blank>", normalized=False, special=True)])
    tok.add_special_tokens(
        {
            "pad_token": AddedToken("<pad>", normalized=False, special=True),
            "unk_token": AddedToken("<unk>", normalized=False, special=True),
        }
    )
    tag_re = re.compile(r"^<[a-z]{2,3}-[A-Za-z]{2}>$")
    tags = sorted(t for t in tok.get_vocab() if tag_re.match(t))
    if tags:
        tok.add_special_tokens(
            {"additional_special_tokens": [AddedToken(t, normalized=False, special=True) for t in tags]}
        )
    return tok


# --------------------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------------------
def make_test_audio(seed: int, seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Deterministic speech-like audio (float32, peak ~0.5).

    A sequence of "syllables" (80-300 ms): a voiced part (harmonics of a gliding f0 shaped by two random
    formant peaks, with an attack/decay envelope), sometimes preceded by a fricative noise burst, separated
    by short pauses and occasional longer ones. Plus a faint noise floor so no frame is exactly silent.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, dtype=np.float64)
    pos = int(rng.integers(0, int(0.05 * sample_rate) + 1))
    base_f0 = rng.uniform(95.0, 210.0)
    while pos < n:
        if rng.random() < 0.35:  # fricative burst
            m = int(rng.uniform(0.03, 0.09) * sample_rate)
            noise = rng.standard_normal(m)
            noise = np.diff(noise, prepend=0.0)  # crude high-pass
            env = np.hanning(m) if m > 1 else np.ones(m)
            seg = 0.15 * rng.uniform(0.3, 1.0) * noise * env
            end = min(n, pos + m)
            out[pos:end] += seg[: end - pos]
            pos = end
        m = int(rng.uniform(0.08, 0.30) * sample_rate)
        t = np.arange(m) / sample_rate
        f0 = base_f0 * (1.0 + rng.uniform(-0.15, 0.15)) * (1.0 + rng.uniform(-0.2, 0.2) * t / max(t[-1], 1e-3))
        f0 = f0 * (1.0 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        f1, f2 = rng.uniform(300, 900), rng.uniform(900, 2600)
        seg = np.zeros(m)
        for h in range(1, 40):
            fh = h * f0.mean()
            if fh > 7600:
                break
            amp = np.exp(-((fh - f1) / 180.0) ** 2) + 0.6 * np.exp(-((fh - f2) / 250.0) ** 2) + 0.02 / h
            seg += amp * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
        attack = max(1, int(0.015 * sample_rate))
        env = np.minimum(1.0, np.arange(m) / attack) * np.exp(-t * rng.uniform(1.0, 6.0))
        seg *= env * rng.uniform(0.4, 1.0)
        end = min(n, pos + m)
        out[pos:end] += seg[: end - pos]
        pos = end
        pos += int((rng.uniform(0.25, 0.6) if rng.random() < 0.12 else rng.uniform(0.01, 0.06)) * sample_rate)
    peak = np.max(np.abs(out))
    if peak > 0:
        out *= 0.5 / peak
    out += 1e-4 * rng.standard_normal(n)
    return out.astype(np.float32)


def test_clips(seed: int = 1234) -> dict[str, np.ndarray]:
    """Named deterministic clips used across the tests.

    normal: 3 s; short: 0.7 s (shorter than one 1120 ms chunk); leading_silence: 0.8 s of near-silence then
    2 s of speech; odd_length: 2 s + 77 samples (length not a multiple of 160); long: 8 s (longer than the
    56/70-frame left context, so the attention cache wraps).
    """
    rng = np.random.default_rng(seed)
    silence = (1e-4 * rng.standard_normal(int(0.8 * SAMPLE_RATE))).astype(np.float32)
    return {
        "normal": make_test_audio(seed, 3.0),
        "short": make_test_audio(seed + 1, 0.7),
        "leading_silence": np.concatenate([silence, make_test_audio(seed + 2, 2.0)]),
        "odd_length": make_test_audio(seed + 3, 2.0 + 77 / SAMPLE_RATE),
        "long": make_test_audio(seed + 4, 8.0),
    }


# --------------------------------------------------------------------------------------------------------
# Model building
# --------------------------------------------------------------------------------------------------------
def _reinit_(model, seed: int, with_prompt: bool, prompt_strength: float = 0.2):
    """Deterministic, healthier-than-default random init (activations O(1), well separated logits)."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=g) * std

    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if p.dim() >= 2:
                fan_in = p[0].numel()
                if "embedding" in name:
                    p.copy_(normal(p.shape, 1.0))
                else:
                    p.copy_(normal(p.shape, 1.0 / math.sqrt(fan_in)))
            elif "bias_u" in name or "bias_v" in name:
                p.copy_(normal(p.shape, 0.1))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + normal(p.shape, 0.1))
            else:  # biases (linear, conv, LayerNorm, LSTM)
                p.copy_(normal(p.shape, 0.05))
        # NeMo keeps the blank (start symbol) embedding at zero.
        model.decoder.embedding.weight[model.config.blank_token_id].zero_()
        if with_prompt:
            # Make the language prompt matter: larger weights on the one-hot half of the prompt MLP input.
            lin1 = model.prompt_projector.linear_1.weight
            hidden = model.config.encoder_config.hidden_size
            lin1[:, hidden:] = normal(lin1[:, hidden:].shape, prompt_strength)
        # Joint head: spread the logits (margins well above float noise).
        head = model.joint.head.weight
        head.copy_(normal(head.shape, 3.0 / math.sqrt(head.shape[1])))


def _greedy(model, enc_proj: torch.Tensor, blank: int, max_symbols: int, blank_bias_delta: float = 0.0,
            max_tokens: int | None = None):
    """Plain greedy RNN-T over projected encoder frames [T, H] (same rules as HF generate)."""
    dec = model.decoder
    head = model.joint.head
    act = model.joint.activation
    tokens = []
    state = None
    inp = torch.tensor([[blank]])
    emb = dec.embedding(inp)
    out, state = dec.lstm(emb, state)
    dec_out = dec.decoder_projector(out)[0, 0]
    t, sym = 0, 0
    T = enc_proj.shape[0]
    while t < T:
        logits = head(act(enc_proj[t] + dec_out))
        logits[blank] += blank_bias_delta
        k = int(logits.argmax())
        if k == blank:
            t += 1
            sym = 0
            continue
        tokens.append(k)
        if max_tokens is not None and len(tokens) >= max_tokens:
            break
        sym += 1
        out, state = dec.lstm(dec.embedding(torch.tensor([[k]])), state)
        dec_out = dec.decoder_projector(out)[0, 0]
        if sym >= max_symbols:
            t += 1
            sym = 0
    return tokens


_CALIBRATION_LANGS = ("en-US", "de-DE", "es-ES", "auto")


class _CalibrationData:
    """Encoder outputs (before the prompt MLP) of the calibration clips, computed once."""

    def __init__(self, model, processor, with_prompt, right_context, seed):
        self.model = model
        self.with_prompt = with_prompt
        self.hidden = []
        self.prompt_ids = []
        dictionary = getattr(processor, "prompt_dictionary", {})
        langs = [dictionary[lang] for lang in _CALIBRATION_LANGS] if with_prompt else [None]
        with torch.no_grad():
            for i in range(2 if with_prompt else 6):
                clip = make_test_audio(seed + 100 + i, 3.0)
                feats = processor.feature_extractor(clip, sampling_rate=SAMPLE_RATE, return_tensors="pt")
                out = model.encoder(
                    input_features=feats["input_features"],
                    attention_mask=feats["attention_mask"],
                    num_lookahead_tokens=right_context,
                )
                for pid in langs:
                    self.hidden.append(out.last_hidden_state[0])
                    self.prompt_ids.append(pid)

    def prompt_inputs(self):
        """[T, hidden + num_prompts] prompt MLP inputs (3.5 model only)."""
        n = self.model.config.num_prompts
        return [
            torch.cat([h, torch.nn.functional.one_hot(torch.tensor(pid), n).float().expand(h.shape[0], n)], dim=1)
            for h, pid in zip(self.hidden, self.prompt_ids)
        ]

    def projector_inputs(self):
        if not self.with_prompt:
            return list(self.hidden)
        return [self.model.prompt_projector(x) for x in self.prompt_inputs()]

    def projected(self):
        return [self.model.encoder_projector(x) for x in self.projector_inputs()]


def _standardize_(model, data, seed, enc_gain=1.0, dec_gain=1.0, inhibition=1.0):
    """Condition the random transducer so that greedy decoding behaves like a trained one.

    * Fold a per-dimension standardisation into prompt_projector.linear_1 (x columns) and encoder_projector:
      a random conformer's output is dominated by per-dimension constants, so the joint would otherwise see
      nearly the same input on every frame.
    * Same for decoder_projector over decoder states driven by random token sequences.
    * Self-inhibition: a token's head row loses its component along the joint activation typical of the
      decoder state right after that token, so tokens do not repeat up to max_symbols times.
    * Centre every token's logit over (frame, decoder state) pairs so that no token wins on its static part.
    All of these only rewrite ordinary weights and biases.
    """
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        if data.with_prompt:
            hidden = model.config.encoder_config.hidden_size
            x = torch.cat(data.hidden, dim=0)
            mu, sigma = x.mean(0), x.std(0).clamp_min(1e-3)
            lin1 = model.prompt_projector.linear_1
            wx = torch.randn((lin1.weight.shape[0], hidden), generator=g) / math.sqrt(hidden)
            lin1.weight[:, :hidden] = wx / sigma[None, :]
            lin1.bias.copy_(-(lin1.weight[:, :hidden] @ mu) + 0.05 * torch.randn(lin1.bias.shape, generator=g))
        x = torch.cat(data.projector_inputs(), dim=0)
        mu, sigma = x.mean(0), x.std(0).clamp_min(1e-3)
        lin = model.encoder_projector
        w = torch.randn(lin.weight.shape, generator=g) * (enc_gain / math.sqrt(lin.weight.shape[1]))
        lin.weight.copy_(w / sigma[None, :])
        lin.bias.copy_(-(lin.weight @ mu))
        # decoder side: run the prediction net on random token sequences
        dec = model.decoder
        vocab = model.config.vocab_size
        toks = torch.randint(0, vocab - 1, (8, 40), generator=g)
        out, _ = dec.lstm(dec.embedding(toks))
        y = out.reshape(-1, out.shape[-1])
        mu, sigma = y.mean(0), y.std(0).clamp_min(1e-3)
        lin = dec.decoder_projector
        w = torch.randn(lin.weight.shape, generator=g) * (dec_gain / math.sqrt(lin.weight.shape[1]))
        lin.weight.copy_(w / sigma[None, :])
        lin.bias.copy_(-(lin.weight @ mu))

        e = torch.cat(data.projected(), dim=0)
        d = dec.decoder_projector(out).reshape(-1, out.shape[-1])
        head = model.joint.head
        ks = torch.arange(vocab).repeat(4)
        prefix = torch.randint(0, vocab - 1, (ks.shape[0], 4), generator=g)
        seq = torch.cat([prefix, ks[:, None]], dim=1)
        dk, _ = dec.lstm(dec.embedding(seq))
        dk = dec.decoder_projector(dk[:, -1]).reshape(4, vocab, -1).mean(0)
        u = model.joint.activation(e.mean(0)[None, :] + dk)
        u = u - u.mean(1, keepdim=True)
        u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-6)
        wn = head.weight.norm(dim=1, keepdim=True)
        head.weight.sub_(inhibition * wn * u)

        ei = torch.randint(0, e.shape[0], (4096,), generator=g)
        di = torch.randint(0, d.shape[0], (4096,), generator=g)
        z = model.joint.activation(e[ei] + d[di])
        mean_logit = (z @ head.weight.T).mean(0)
        head.bias.copy_(-mean_logit + 0.05 * torch.randn(head.bias.shape, generator=g))


def _calibrate_blank_(model, data, target_rate, seed):
    """Calibrate the blank row of the joint head so greedy decoding emits ~target_rate tokens per frame.

    The blank row is made (mostly) uniform and positive with bias 0, so the blank logit grows with the joint
    activation like the max of the other logits does: the blank/non-blank odds then stay similar whatever
    the decoder state, and emissions do not run away into max_symbols bursts. Its scale is bisected.
    Returns the achieved rate on the calibration clips.
    """
    blank = model.config.blank_token_id
    with torch.no_grad():
        encs = data.projected()
    n_frames = sum(e.shape[0] for e in encs)
    head = model.joint.head
    hdim = head.weight.shape[1]
    g = torch.Generator().manual_seed(seed + 11)
    noise = torch.randn(hdim, generator=g) * (0.3 / math.sqrt(hdim))
    ones = torch.ones(hdim) / math.sqrt(hdim)

    def rate(gamma):
        with torch.no_grad():
            head.weight[blank] = gamma * ones + noise
            head.bias[blank] = 0.0
            cap = int(4 * target_rate * n_frames) + 1
            total = 0
            for e in encs:
                total += len(_greedy(model, e, blank, model.config.max_symbols_per_step, max_tokens=cap - total))
                if total >= cap:
                    break
            return total / n_frames

    lo, hi = -20.0, 60.0  # rate(lo) high, rate(hi) low
    best = (float("inf"), 0.0)
    for _ in range(16):
        mid = 0.5 * (lo + hi)
        r = rate(mid)
        best = min(best, (abs(r - target_rate), mid))
        if r > target_rate:
            lo = mid
        else:
            hi = mid
    return rate(best[1])


def build_hf_model(
    dirpath,
    *,
    seed: int = 0,
    left_context: int | None = None,
    right_contexts=None,
    default_right_context: int | None = None,
    num_mel_bins: int = 128,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    conv_kernel_size: int = 9,
    subsampling_channels: int = 32,
    decoder_hidden_size: int = 64,
    num_decoder_layers: int = 2,
    prompt_intermediate_size: int = 128,
    num_prompts: int = 128,
    with_prompt: bool = True,
    byte_fallback: bool = True,
    target_rate: float = 1.0 / 3.0,
    byte_logit_offset: float = -1.5,
    calibration_right_context: int | None = None,
):
    """Build, calibrate and save a tiny random HF checkpoint into ``dirpath``; return ``dirpath``.

    ``with_prompt=True``: ``Nemotron3_5AsrForRNNT`` (left 56, r in (0, 1, 3, 6, 13)).
    ``with_prompt=False``: ``NemotronAsrStreamingForRNNT``, the English sibling (left 70, r in (0, 1, 6, 13)).
    vocab_size = number of SentencePiece pieces + 1, blank = last id. The processor records
    ``supported_num_lookahead_tokens = list(right_contexts)`` and
    ``default_num_lookahead_tokens = default_right_context`` (defaults to ``right_contexts[0]``, what the
    transformers converter does with NeMo's first ``att_context_size`` pair).
    """
    from transformers import (
        Nemotron3_5AsrConfig,
        Nemotron3_5AsrForRNNT,
        Nemotron3_5AsrProcessor,
        NemotronAsrStreamingConfig,
        NemotronAsrStreamingFeatureExtractor,
        NemotronAsrStreamingForRNNT,
        NemotronAsrStreamingProcessor,
    )

    dirpath = Path(dirpath)
    dirpath.mkdir(parents=True, exist_ok=True)
    if left_context is None:
        left_context = 56 if with_prompt else 70
    if right_contexts is None:
        right_contexts = (0, 1, 3, 6, 13) if with_prompt else (0, 1, 6, 13)
    right_contexts = [int(r) for r in right_contexts]
    for r in right_contexts:
        if left_context % (r + 1):
            raise ValueError(f"left context {left_context} is not a multiple of r+1={r + 1}")
    if default_right_context is None:
        default_right_context = right_contexts[0]
    if calibration_right_context is None:
        calibration_right_context = max(right_contexts)

    spm_path = build_sentencepiece(dirpath, byte_fallback=byte_fallback, language_tags=with_prompt)
    tokenizer = _build_tokenizer(spm_path)
    import sentencepiece as spm

    n_pieces = spm.SentencePieceProcessor(model_file=spm_path).get_piece_size()
    blank_id = tokenizer.convert_tokens_to_ids("<blank>")
    if blank_id != n_pieces:
        raise AssertionError(f"<blank> got id {blank_id}, expected {n_pieces}")
    pad_id = tokenizer.convert_tokens_to_ids("<pad>")

    feature_extractor = NemotronAsrStreamingFeatureExtractor(
        feature_size=num_mel_bins, sampling_rate=SAMPLE_RATE, hop_length=HOP, n_fft=512, win_length=400,
        preemphasis=0.97, padding_value=0.0,
    )
    encoder_config = dict(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size or 4 * hidden_size,
        conv_kernel_size=conv_kernel_size,
        subsampling_factor=8,
        subsampling_conv_channels=subsampling_channels,
        num_mel_bins=num_mel_bins,
        subsampling_conv_kernel_size=3,
        subsampling_conv_stride=2,
        max_position_embeddings=5000,
        scale_input=True,
        attention_bias=True,
        convolution_bias=True,
        sliding_window=left_context + 1,
        default_num_lookahead_tokens=default_right_context,
        dropout=0.1,
        dropout_positions=0.0,
        layerdrop=0.1,
        activation_dropout=0.1,
        attention_dropout=0.1,
    )
    common = dict(
        vocab_size=n_pieces + 1,
        decoder_hidden_size=decoder_hidden_size,
        num_decoder_layers=num_decoder_layers,
        hidden_act="relu",
        max_symbols_per_step=10,
        pad_token_id=pad_id,
        blank_token_id=blank_id,
    )
    torch.manual_seed(seed)
    if with_prompt:
        config = Nemotron3_5AsrConfig(
            encoder_config={"model_type": "nemotron_asr_streaming_encoder", **encoder_config},
            num_prompts=num_prompts,
            prompt_intermediate_size=prompt_intermediate_size,
            default_prompt_id=101,
            **common,
        )
        model = Nemotron3_5AsrForRNNT(config)
        processor = Nemotron3_5AsrProcessor(
            feature_extractor=feature_extractor,
            tokenizer=tokenizer,
            supported_num_lookahead_tokens=right_contexts,
            default_num_lookahead_tokens=default_right_context,
            prompt_dictionary=None,  # the real (NeMo) dictionary, stored in processor_config.json
            num_prompts=num_prompts,
        )
        # Store the dictionary explicitly (None would fall back to the module default at load time anyway).
        from transformers.models.nemotron3_5_asr.processing_nemotron3_5_asr import DEFAULT_PROMPT_DICTIONARY

        processor.prompt_dictionary = dict(DEFAULT_PROMPT_DICTIONARY)
    else:
        config = NemotronAsrStreamingConfig(encoder_config=encoder_config, **common)
        model = NemotronAsrStreamingForRNNT(config)
        processor = NemotronAsrStreamingProcessor(
            feature_extractor=feature_extractor,
            tokenizer=tokenizer,
            supported_num_lookahead_tokens=right_contexts,
            default_num_lookahead_tokens=default_right_context,
        )
    model.eval()
    _reinit_(model, seed, with_prompt)
    with torch.backends.mkldnn.flags(enabled=False):  # oneDNN LSTM steps are ~5x slower
        data = _CalibrationData(model, processor, with_prompt, calibration_right_context, seed)
        _standardize_(model, data, seed)
        with torch.no_grad():
            head_bias = model.joint.head.bias
            if byte_fallback and byte_logit_offset:
                byte_re = re.compile(r"^<0x[0-9A-F]{2}>$")
                byte_ids = [i for t, i in tokenizer.get_vocab().items() if byte_re.match(t)]
                head_bias[byte_ids] += byte_logit_offset
            # Never emit <unk> / <pad> (HF's tokenizer drops pad ids when decoding; a trained model never
            # emits them either).
            for tok in ("<unk>", "<pad>"):
                head_bias[tokenizer.convert_tokens_to_ids(tok)] = -1e3
        _calibrate_blank_(model, data, target_rate, seed)

    if hasattr(model.config, "_name_or_path"):
        try:
            del model.config._name_or_path
        except AttributeError:
            pass
    model.generation_config.decoder_start_token_id = model.config.blank_token_id
    model.save_pretrained(dirpath, safe_serialization=True)
    processor.save_pretrained(dirpath)
    return str(dirpath)


# --------------------------------------------------------------------------------------------------------
# Loading (cached per directory)
# --------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def load_hf(model_dir):
    """(model, processor) for a directory, cached. Model in eval mode, fp32, CPU."""
    from transformers import AutoModelForRNNT, AutoProcessor

    model_dir = str(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForRNNT.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    return model, processor


def _has_prompt(model) -> bool:
    return hasattr(model, "prompt_projector")


def _proc_kwargs(model, language):
    if _has_prompt(model):
        return {"language": "auto" if language is None else language}
    return {}


def hf_features(model_dir, audio):
    """Log-mel features from the HF feature extractor: (features [T, n_mels] float32, valid_length int)."""
    _, processor = load_hf(str(model_dir))
    out = processor.feature_extractor(np.asarray(audio, dtype=np.float32), sampling_rate=SAMPLE_RATE,
                                      return_tensors="pt")
    return out["input_features"][0], int(out["attention_mask"][0].sum())


class _Capture:
    """Forward hook on ``encoder_projector``: its input is the prompt-MLP output (3.5) / encoder output (en)."""

    def __init__(self, model):
        self.chunks = []
        self.handle = model.encoder_projector.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.chunks.append(args[0].detach()[0].clone())

    def close(self):
        self.handle.remove()
        return torch.cat(self.chunks, dim=0) if self.chunks else None


def _result(model, processor, output, encoder_output):
    blank = model.config.blank_token_id
    seq = output.sequences[0].tolist()
    dur = output.durations[0].tolist() if getattr(output, "durations", None) is not None else None
    # sequences[0] is the decoder start (blank); the step durations are 0/1 frame advances.
    ids, frames = [], []
    frame = 0
    for i, tok in enumerate(seq):
        if i > 0 and tok != blank:
            ids.append(int(tok))
            frames.append(frame)
        if dur is not None:
            frame += int(dur[i])
    return {
        "token_ids": ids,
        "token_frames": frames if dur is not None else None,
        "encoder_output": encoder_output,
        "text": processor.decode(ids, skip_special_tokens=False),
        "text_no_special": processor.decode(ids, skip_special_tokens=True),
    }


def hf_offline(model_dir, audio, language="en-US", right_context=None):
    """HF offline transcription (``model.generate`` on the whole utterance, greedy).

    ``language``: a code from the processor's prompt dictionary ("en-US", "de", "auto", ...); ignored for
    the prompt-less English model. ``right_context``: ``num_lookahead_tokens`` (None = processor default).
    Returns ``dict(token_ids, token_frames, encoder_output [T, hidden] (prompt MLP output, before
    encoder_projector), text, text_no_special)``.
    """
    model, processor = load_hf(str(model_dir))
    inputs = processor(np.asarray(audio, dtype=np.float32), sampling_rate=SAMPLE_RATE,
                       **_proc_kwargs(model, language))
    if right_context is not None:
        inputs["num_lookahead_tokens"] = int(right_context)
    cap = _Capture(model)
    try:
        with torch.no_grad():
            output = model.generate(**inputs, return_dict_in_generate=True)
    finally:
        enc = cap.close()
    return _result(model, processor, output, enc)


def hf_streaming(model_dir, audio, language="en-US", right_context=None):
    """HF cache-aware streaming, following the documented recipe (model doc "Streaming transcription").

    ``processor.set_num_lookahead_tokens(r)``; first chunk = processor(audio[:num_samples_first_audio_chunk],
    is_streaming=True, is_first_audio_chunk=True) -> its first ``1 + 8r`` mel frames; then, while
    ``start + num_samples_per_audio_chunk < len(audio)``, processor(audio[start:end], is_first_audio_chunk=False)
    -> ``8(r + 1)`` mel frames, with ``start = mel_frame_idx * hop - n_fft // 2``; these chunks are given to
    ``model.generate(**first_chunk_inputs, input_features=generator)`` (which requires
    ``num_lookahead_tokens``; it rides in the processor output).

    Known limitations of that recipe, reproduced faithfully here (the tests use ``hf_offline`` as ground
    truth):
    * The final partial chunk is dropped: audio after the last full chunk (``end >= len(audio)`` stops the
      loop, even when ``end == len(audio)``) is never encoded, so ``encoder_output`` has fewer frames than
      offline and tokens near the end may be missing. Clips shorter than the first chunk give a first chunk
      with fewer than ``1 + 8r`` frames, which generate rejects (ValueError).
    * r = 0 raises NotImplementedError here: see ``HF_R0_NOTE``.
    Returns ``dict(token_ids, token_frames, encoder_output, text, text_no_special, num_chunks)``.
    """
    model, processor = load_hf(str(model_dir))
    audio = np.asarray(audio, dtype=np.float32)
    r = processor.default_num_lookahead_tokens if right_context is None else int(right_context)
    if r == 0 and not _ALLOW_R0[0]:
        raise NotImplementedError(HF_R0_NOTE)
    processor.set_num_lookahead_tokens(r)
    lang_kw = _proc_kwargs(model, language)
    fe = processor.feature_extractor
    first_inputs = processor(
        audio[: processor.num_samples_first_audio_chunk],
        sampling_rate=SAMPLE_RATE, is_streaming=True, is_first_audio_chunk=True, return_tensors="pt", **lang_kw,
    )
    n_chunks = [0]

    def gen():
        n_chunks[0] += 1
        yield first_inputs.input_features[:, : processor.num_mel_frames_first_audio_chunk, :]
        mel_idx = processor.num_mel_frames_first_audio_chunk
        start = mel_idx * fe.hop_length - fe.n_fft // 2
        while (end := start + processor.num_samples_per_audio_chunk) < audio.shape[0]:
            inputs = processor(audio[start:end], sampling_rate=SAMPLE_RATE, is_streaming=True,
                               is_first_audio_chunk=False, return_tensors="pt", **lang_kw)
            n_chunks[0] += 1
            yield inputs.input_features
            mel_idx += processor.num_mel_frames_per_audio_chunk
            start = mel_idx * fe.hop_length - fe.n_fft // 2

    kwargs = dict(first_inputs)
    kwargs["input_features"] = gen()
    cap = _Capture(model)
    try:
        with torch.no_grad():
            output = model.generate(**kwargs, return_dict_in_generate=True)
    finally:
        enc = cap.close()
    res = _result(model, processor, output, enc)
    res["num_chunks"] = n_chunks[0]
    return res


_ALLOW_R0 = [False]  # set _ALLOW_R0[0] = True to run the raw recipe at r=0 (to observe its failure)
HF_R0_DETAIL = (
    "At r=0 the first chunk is 1 mel frame (num_samples_first_audio_chunk = 200), so the second chunk starts "
    "at sample 1*160 - n_fft//2 = -96: the recipe slices audio[-96:1584], which numpy reads as an empty array "
    "(negative index from the end), and the feature extractor's torch.stft then raises RuntimeError "
    "('expected 0 < n_fft < 0, but got n_fft=400'). generate itself accepts r=0 chunks of 1 then 8 frames."
)
HF_R0_NOTE = "transformers' documented streaming recipe crashes at r=0 (num_lookahead_tokens=0): " + HF_R0_DETAIL


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


__all__ = [
    "LANGUAGE_TAGS",
    "build_sentencepiece",
    "build_hf_model",
    "make_test_audio",
    "test_clips",
    "load_hf",
    "hf_features",
    "hf_offline",
    "hf_streaming",
]
