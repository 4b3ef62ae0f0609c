"""Long-form examples for the demo model (issue 35), built on the fly from corpus clips.

The corpus has one sentence per clip, so a model trained on it alone learns that a sentence-final mark
(``.``, ``?``, ``!``) is followed by the end of the audio, and stops transcribing after the first sentence
of a longer stream. A long-form example is 1 to ``max_utts`` clips of one language, joined with random
pauses (0 to ``pause_max`` s, now and then a longer stretch), each pause digital silence or white / pink
noise at a random level, and sometimes a stream joined late: the first clip cut at a word boundary (from
espeak-ng's word times), its first words dropped from the target. Waveforms are concatenated and the
log-mel features computed afterwards (the feature extractor is frame-local: features of a concatenation
are the concatenation of the features, up to the frames at the joins), so the join is what a live stream
gives. The target is the clips' texts joined by spaces, so sentence-final marks sit inside the example.

``make_streams`` and ``sentence_losses`` serve the evaluation (``evaluate_longform.py``) and the tests:
streams of held-out clips joined with pauses, and which sentences of a stream are lost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

RATE = 16000


@dataclass
class LongFormConfig:
    max_utts: int = 6  # clips per example: 1 ... max_utts, uniform, fewer when max_seconds is reached
    max_seconds: float = 30.0  # an example stops growing before this length
    pause_max: float = 1.0  # pauses between clips: uniform 0 ... pause_max seconds
    long_pause_prob: float = 0.15  # ... or with this probability a longer stretch, uniform pause_max ... long_pause_max
    long_pause_max: float = 4.0
    lead_max: float = 1.0  # silence / noise before the first clip, uniform 0 ... lead_max seconds
    long_lead_prob: float = 0.0  # ... or with this probability uniform lead_max ... long_lead_max: a stream that
    long_lead_max: float = 8.0  # opens on more silence than the encoder's attention left context (4.5 s) holds
    zero_prob: float = 0.3  # a pause is digital silence with this probability, else noise
    noise_db: tuple = (-75.0, -35.0)  # noise RMS in dBFS, uniform in this range (white or pink-ish)
    late_join_prob: float = 0.25  # the first clip is cut at a word boundary (a stream joined late)


def noise(n: int, rng: random.Random, cfg: LongFormConfig) -> np.ndarray:
    """n samples of digital silence or white / pink-ish noise at a random level."""
    if n <= 0:
        return np.zeros(0, np.float32)
    if rng.random() < cfg.zero_prob:
        return np.zeros(n, np.float32)
    gen = np.random.default_rng(rng.getrandbits(32))
    x = gen.standard_normal(n).astype(np.float32)
    if rng.random() < 0.5:  # pink-ish: amplitude spectrum shaped 1 / sqrt(f)
        spec = np.fft.rfft(x)
        spec[1:] /= np.sqrt(np.arange(1, len(spec)))
        spec[0] = 0.0
        x = np.fft.irfft(spec, n).astype(np.float32)
    rms = float(np.sqrt(np.mean(x * x))) or 1.0
    level = 10 ** (rng.uniform(*cfg.noise_db) / 20)
    return (x * (level / rms)).astype(np.float32)


def pause_seconds(rng: random.Random, cfg: LongFormConfig) -> float:
    if rng.random() < cfg.long_pause_prob:
        return rng.uniform(cfg.pause_max, cfg.long_pause_max)
    return rng.uniform(0.0, cfg.pause_max)


def lead_seconds(rng: random.Random, cfg: LongFormConfig) -> float:
    if cfg.long_lead_prob and rng.random() < cfg.long_lead_prob:  # no draw without it: old configs replay
        return rng.uniform(cfg.lead_max, cfg.long_lead_max)
    return rng.uniform(0.0, cfg.lead_max)


def late_join(audio: np.ndarray, text: str, words, rng: random.Random) -> tuple[np.ndarray, str]:
    """The clip cut at a random point between two words (k >= 1 words dropped), and its remaining text.
    Unchanged when the clip has no word times or fewer than 2 words."""
    toks = text.split()
    if not words or len(words) != len(toks) or len(toks) < 2:
        return audio, text
    k = rng.randint(1, len(toks) - 1)
    lo, hi = words[k - 1][1], words[k][0]
    cut = int(rng.uniform(lo, max(lo, hi)) * RATE)
    return audio[cut:], " ".join(toks[k:])


def build_example(clips: list[tuple[np.ndarray, str, list | None]], rng: random.Random,
                  cfg: LongFormConfig) -> tuple[np.ndarray, str]:
    """One long-form waveform and its target from ``clips`` [(audio, text, word times)] in order."""
    parts: list[np.ndarray] = [noise(int(lead_seconds(rng, cfg) * RATE), rng, cfg)]
    texts = []
    for j, (audio, text, words) in enumerate(clips):
        if j == 0 and rng.random() < cfg.late_join_prob:
            audio, text = late_join(audio, text, words, rng)
        elif j > 0:
            parts.append(noise(int(pause_seconds(rng, cfg) * RATE), rng, cfg))
        parts.append(audio.astype(np.float32))
        texts.append(text)
    return np.concatenate(parts), " ".join(texts)


def draw_clips(by_lang: dict[str, list[int]], durations: list[float], rng: random.Random,
               cfg: LongFormConfig, cum_weights: dict[str, list[float]] | None = None) -> list[int]:
    """Indices of 1 ... max_utts clips of one random language, at most max_seconds of speech and pauses;
    uniform over the language's clips, or by ``cum_weights`` (per language, cumulative, in by_lang's order)."""
    lang = rng.choice(sorted(by_lang))
    n = rng.randint(1, cfg.max_utts)
    out, total = [], 0.0
    for _ in range(n):
        if cum_weights:
            i = rng.choices(by_lang[lang], cum_weights=cum_weights[lang])[0]
        else:
            i = rng.choice(by_lang[lang])
        if out and total + durations[i] + cfg.pause_max > cfg.max_seconds:
            break
        out.append(i)
        total += durations[i] + cfg.pause_max
    return out


# --- evaluation: streams of held-out clips ---


def make_streams(rows: list[dict], n_streams: int, per_stream: int, seed: int, pause_max: float = 1.0,
                 same_lang: bool = True) -> list[dict]:
    """``n_streams`` streams of ``per_stream`` clips each (rows: manifest rows with audio_filepath, text,
    lang), one language per stream, clips drawn without replacement inside a stream, pauses uniform in
    0 ... pause_max s of digital silence. Returns [{lang, rows: [row], pauses: [s]}] (pauses[j] comes
    before clip j; pauses[0] = 0)."""
    rng = random.Random(seed)
    by_lang: dict[str, list[dict]] = {}
    for r in rows:
        by_lang.setdefault(r["lang"], []).append(r)
    langs = sorted(by_lang)
    out = []
    for k in range(n_streams):
        lang = langs[k % len(langs)] if same_lang else None
        pool = by_lang[lang]
        picked = rng.sample(pool, min(per_stream, len(pool)))
        pauses = [0.0] + [round(rng.uniform(0.0, pause_max), 3) for _ in picked[1:]]
        out.append({"lang": lang, "rows": picked, "pauses": pauses})
    return out


def join_audio(clips: list[np.ndarray], pauses: list[float]) -> np.ndarray:
    parts = []
    for audio, p in zip(clips, pauses):
        parts.append(np.zeros(int(round(p * RATE)), np.float32))
        parts.append(audio.astype(np.float32))
    return np.concatenate(parts)


def align(ref: list[str], hyp: list[str]) -> tuple[list[str], list[int]]:
    """A minimum-edit alignment of hyp to ref: per reference word "ok", "sub" or "del", and per reference
    word the hypothesis words inserted right after it (insertions before the first word count on it)."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), np.int32)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    ops, ins = [""] * n, [0] * max(n, 1)
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            ops[i - 1] = "ok" if ref[i - 1] == hyp[j - 1] else "sub"
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            ops[i - 1] = "del"
            i -= 1
        else:
            ins[max(i - 1, 0)] += 1
            j -= 1
    return ops, ins[:n]


def sentence_errors(refs: list[str], hyp: str) -> list[tuple[int, int, int]]:
    """Per sentence of a stream (normalised reference texts in order, normalised hypothesis of the whole
    stream): (errors, deleted words, words) on the alignment of the whole stream; insertions count on the
    sentence of the reference word they follow."""
    words = [w.split() for w in refs]
    ops, ins = align([w for ws in words for w in ws], hyp.split())
    out, k = [], 0
    for ws in words:
        seg, extra = ops[k: k + len(ws)], ins[k: k + len(ws)]
        k += len(ws)
        out.append((sum(o != "ok" for o in seg) + sum(extra), sum(o == "del" for o in seg), len(ws)))
    return out


def sentence_losses(refs: list[str], hyp: str) -> list[bool]:
    """For each sentence of a stream, whether it is lost: more than half of its words deleted on the
    alignment of the whole stream (see sentence_errors)."""
    return [2 * dels > n for _, dels, n in sentence_errors(refs, hyp)]
