"""Synthetic multilingual speech corpus for the onepass demo model (espeak-ng + Faker text).

Text: Faker's locale sentence generator (``Faker(loc).sentence()``: random words from its per-locale word
list, first word capitalised, German nouns capitalised, final period), with a comma inserted now and then
and some sentences turned into questions or exclamations, so the targets are cased and punctuated.
Speech: espeak-ng (Debian ``espeak-ng``) with voice variants, speaking rates and pitches, resampled to
16 kHz mono, random gain, leading/trailing silence and light white/pink noise.

Held-out split: sentences that never occur in train AND voice variants never used in train.
Manifests (NeMo style, one JSON object per line): audio_filepath, text, lang, duration.

    python tools/demo_model/make_corpus.py --out /work/demo_corpus --train-per-lang 3000 --test-per-lang 150

The corpus is not committed; this script regenerates it deterministically (seeded).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000

# (onepass language code, Faker locale, espeak-ng voice)
LANGUAGES = {
    "en-US": ("en_US", "en-us"),
    "es-ES": ("es_ES", "es"),
    "de-DE": ("de_DE", "de"),
}
TRAIN_VARIANTS = ("", "m1", "m2", "m3", "m4", "m6", "f1", "f2", "f4")
TEST_VARIANTS = ("m5", "m7", "f3", "f5")  # never heard in training


@dataclass(frozen=True)
class Item:
    path: str  # output wav path
    text: str  # target text (cased, punctuated)
    lang: str  # en-US / es-ES / de-DE
    voice: str  # espeak-ng voice spec, e.g. "de+m3"
    rate_wpm: int  # espeak-ng -s
    pitch: int  # espeak-ng -p (0-99)
    seed: int  # noise / silence / gain seed


def make_sentences(locale: str, n: int, seed: int, min_words: int = 3, max_words: int = 8) -> list[str]:
    """n distinct cased, punctuated sentences from Faker's word list for ``locale``."""
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(seed)
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        words = fake.sentence(nb_words=int(rng.integers(min_words, max_words + 1)),
                              variable_nb_words=False).rstrip(".").split()
        if len(words) >= 4 and rng.random() < 0.25:  # a comma (espeak pauses there)
            k = int(rng.integers(1, len(words) - 1))
            words[k] += ","
        end = rng.choice([".", "?", "!"], p=[0.75, 0.18, 0.07])
        s = " ".join(words) + end
        if locale == "es_ES" and end in "?!":
            s = ("¿" if end == "?" else "¡") + s
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def synthesize(item: Item) -> float:
    """Render one item to a 16 kHz wav; return its duration in seconds."""
    wav = subprocess.run(
        ["espeak-ng", "-v", item.voice, "-s", str(item.rate_wpm), "-p", str(item.pitch), "--stdout", item.text],
        check=True, capture_output=True,
    ).stdout
    audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
    audio = soxr.resample(audio, sr, SAMPLE_RATE)
    # espeak pads both ends with a little silence; trim it, then add our own.
    nz = np.nonzero(np.abs(audio) > 1e-3)[0]
    if len(nz):
        audio = audio[max(0, nz[0] - 160): nz[-1] + 160]
    rng = np.random.default_rng(item.seed)
    audio = audio / (np.abs(audio).max() + 1e-9) * rng.uniform(0.15, 0.9)
    lead = np.zeros(int(rng.uniform(0.05, 0.5) * SAMPLE_RATE), np.float32)
    tail = np.zeros(int(rng.uniform(0.05, 0.5) * SAMPLE_RATE), np.float32)
    audio = np.concatenate([lead, audio, tail])
    noise = rng.standard_normal(len(audio)).astype(np.float32)
    if rng.random() < 0.5:  # pinkish: leaky integration of white noise
        noise = np.cumsum(noise) * 0.05
        noise -= np.convolve(noise, np.ones(401) / 401, mode="same")
    snr_db = rng.uniform(20.0, 45.0)
    speech_rms = np.sqrt(np.mean(audio**2) + 1e-12) * np.sqrt(len(audio) / max(1, len(nz)))
    noise *= speech_rms / (np.sqrt(np.mean(noise**2)) + 1e-12) * 10 ** (-snr_db / 20)
    audio = np.clip(audio + noise, -1.0, 1.0).astype(np.float32)
    Path(item.path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(item.path, audio, SAMPLE_RATE, subtype="PCM_16")
    return len(audio) / SAMPLE_RATE


def plan(out: Path, split: str, lang: str, sentences: list[str], variants, seed: int) -> list[Item]:
    locale, voice = LANGUAGES[lang]
    rng = np.random.default_rng(seed)
    items = []
    for i, text in enumerate(sentences):
        variant = variants[int(rng.integers(len(variants)))]
        items.append(Item(
            path=str(out / split / lang / f"{lang}_{split}_{i:05d}.wav"),
            text=text,
            lang=lang,
            voice=voice + (f"+{variant}" if variant else ""),
            rate_wpm=int(rng.integers(130, 211)),
            pitch=int(rng.integers(25, 76)),
            seed=seed * 100003 + i,
        ))
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/work/demo_corpus"))
    ap.add_argument("--train-per-lang", type=int, default=3000)
    ap.add_argument("--test-per-lang", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    manifests: dict[str, list[dict]] = {"train": [], "test": []}
    for li, lang in enumerate(LANGUAGES):
        locale, _ = LANGUAGES[lang]
        sents = make_sentences(locale, args.train_per_lang + args.test_per_lang, seed=args.seed * 1000 + li)
        train_s, test_s = sents[: args.train_per_lang], sents[args.train_per_lang:]
        assert not set(train_s) & set(test_s)
        for split, ss, variants in (("train", train_s, TRAIN_VARIANTS), ("test", test_s, TEST_VARIANTS)):
            items = plan(args.out, split, lang, ss, variants, seed=args.seed * 1000 + li * 10 + (split == "test"))
            with ProcessPoolExecutor(args.workers) as pool:
                durations = list(pool.map(synthesize, items, chunksize=32))
            for it, d in zip(items, durations):
                manifests[split].append(dict(audio_filepath=it.path, text=it.text, lang=it.lang,
                                             duration=round(d, 3), voice=it.voice))
            print(f"{lang} {split}: {len(items)} clips, {sum(durations) / 3600:.2f} h", flush=True)
    for split, rows in manifests.items():
        with open(args.out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        for lang in LANGUAGES:
            with open(args.out / f"{split}_{lang}.jsonl", "w", encoding="utf-8") as f:
                for r in rows:
                    if r["lang"] == lang:
                        f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
