"""Synthetic multilingual speech corpus for the onepass demo model (espeak-ng + Faker text).

Text: Faker's locale sentence generator (``Faker(loc).sentence()``: random words from its per-locale word
list, first word capitalised, German nouns capitalised, final period), with a comma inserted now and then
and some sentences turned into questions or exclamations, so the targets are cased and punctuated.
Speech: espeak-ng (Debian ``espeak-ng``) with voice variants (espeak-ng's own and, with
``--random-variants``, seeded random ones from voices.py), speaking rates and pitches, resampled to
16 kHz mono, random gain, leading/trailing silence and light white/pink noise.

Held-out split: sentences that never occur in train AND voice variants never used in train.
Manifests (NeMo style, one JSON object per line): audio_filepath, text, lang, duration, plus voice and
words (voiced [start, end] seconds of each whitespace-separated word, from libespeak-ng word events) and
phones ([start seconds, espeak-ng phoneme mnemonic], from its phoneme events).

    python -m tools.demo_model.make_corpus --out /work/demo_corpus --train-per-lang 3000 --test-per-lang 150

The corpus is not committed; this script regenerates it deterministically (seeded). libespeak-ng keeps
state from one utterance to the next (a text's audio, its length too, depends on what the same process
rendered before) and cannot be re-initialised in-process (the first synth after a second
espeak_Initialize hangs), so the clips are rendered in fixed blocks of ``--block``, each in order by a
fresh process: a clip's audio depends on its block alone, not on ``--workers`` or on scheduling. (Before
the fourteenth session the pool handed out clips as workers came free, and about a quarter of the
held-out clips came out slightly different on each regeneration.)
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
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
# ``--train-variants wide``: also espeak-ng's named variants (files in espeak-ng-data/voices/!v: formant,
# pitch, breath and Klatt-synthesiser settings), leaving out the held-out ones above and the whispered,
# robotic and effect voices. More speakers per word is what the held-out voices need (fourth session).
WIDE_TRAIN_VARIANTS = TRAIN_VARIANTS + (
    "m8", "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "antonio", "aunty", "belinda", "benjamin",
    "boris", "caleb", "david", "Denis", "Diogo", "ed", "edward", "edward2", "Gene", "Gene2", "gustave",
    "Henrique", "Hugo", "iven", "iven2", "iven3", "iven4", "Jacky", "john", "kaukovalta", "Lee", "linda",
    "marcelo", "Marco", "Mario", "max", "Michael", "michel", "miguel", "Mike",
    "Mr",  # espeak-ng's file is "Mr serious": this name renders as the plain voice (kept: the shipped corpus used it)
    "Nguyen", "pablo",
    "paul", "pedro", "quincy", "RicishayMax", "RicishayMax2", "RicishayMax3", "rob", "robert", "steph",
    "steph2", "steph3", "Storm", "Tweaky", "zac", "anika", "AnxiousAndy", "grandpa", "klatt", "klatt2",
    "klatt3", "klatt4", "klatt5", "klatt6", "norbert", "sandro", "shelby", "travis", "victor",
)
assert not set(WIDE_TRAIN_VARIANTS) & set(TEST_VARIANTS)


@dataclass(frozen=True)
class Item:
    path: str  # output wav path
    text: str  # target text (cased, punctuated)
    lang: str  # en-US / es-ES / de-DE
    voice: str  # espeak-ng voice spec, e.g. "de+m3"
    rate_wpm: int  # espeak-ng -s
    pitch: int  # espeak-ng -p (0-99)
    seed: int  # noise / silence / gain seed


def lexicon(locale: str, n: int, seed: int) -> list[str] | None:
    """``n`` words drawn (seeded) from Faker's word list for ``locale``; None (the whole list) for n <= 0."""
    from faker import Faker

    if n <= 0:
        return None
    words = [p for p in Faker(locale).providers if type(p).__module__.startswith("faker.providers.lorem")][0].word_list
    rng = np.random.default_rng(seed)
    return sorted(words[i] for i in rng.choice(len(words), size=min(n, len(words)), replace=False))


def make_sentences(locale: str, n: int, seed: int, min_words: int = 3, max_words: int = 8,
                   words_per_lang: int = 0) -> list[str]:
    """n distinct cased, punctuated sentences from Faker's word list for ``locale`` (or a seeded subset of
    ``words_per_lang`` of its words)."""
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(seed)
    rng = np.random.default_rng(seed)
    vocab = lexicon(locale, words_per_lang, seed)
    out, seen = [], set()
    while len(out) < n:
        words = fake.sentence(nb_words=int(rng.integers(min_words, max_words + 1)),
                              variable_nb_words=False, ext_word_list=vocab).rstrip(".").split()
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


class _Espeak:
    """libespeak-ng (the library behind the espeak-ng command) through ctypes, in-process.

    Unlike the command it reports where each word starts in the audio (espeakEVENT_WORD), which the
    training script uses for a frame-level warm start. One instance per worker process.
    """

    class Event(ctypes.Structure):  # espeak_EVENT (speak_lib.h)
        _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                    ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                    ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                    ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]

    WORD, END, PHONEME = 1, 5, 7  # espeakEVENT_WORD, espeakEVENT_END, espeakEVENT_PHONEME
    RATE, PITCH = 1, 3  # espeakRATE, espeakPITCH

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1")
        # AUDIO_OUTPUT_SYNCHRONOUS, espeakINITIALIZE_PHONEME_EVENTS
        self.sample_rate = self.lib.espeak_Initialize(2, 0, None, 1)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int]] = []
        self.phones: list[tuple[int, str]] = []  # (start sample, espeak-ng phoneme mnemonic) of the last synth
        proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                 ctypes.POINTER(self.Event))
        self._cb = proto(self._callback)  # keep a reference: the library holds the pointer
        self.lib.espeak_SetSynthCallback(self._cb)

    def _callback(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            e = events[i]
            if e.type in (self.WORD, self.END):
                self._events.append((e.type, e.text_position, e.length, e.sample))
            elif e.type == self.PHONEME:
                self.phones.append((e.sample, bytes(e.id).split(b"\0")[0].decode("ascii", "replace")))
            i += 1
        return 0

    def synth(self, voice: str, rate: int, pitch: int, text: str) -> tuple[np.ndarray, list[int] | None]:
        """(int16 audio at self.sample_rate, the start sample of each whitespace-separated word of ``text``
        followed by the end of the audio, or None where the word events do not cover every word)."""
        self._chunks.clear()
        self._events.clear()
        self.phones = []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(self.RATE, rate, 0)
        self.lib.espeak_SetParameter(self.PITCH, pitch, 0)
        t = text.encode("utf-8")
        self.lib.espeak_Synth(t, len(t) + 1, 0, 1, 0, 1, None, None)  # POS_CHARACTER, espeakCHARS_UTF8
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        # word events carry the 1-based character position of the word; zero-length ones mark clause ends
        first_char, pos = [], 1
        for w in text.split(" "):
            first_char.append(pos)
            pos += len(w) + 1
        starts: dict[int, int] = {}
        for kind, tpos, length, sample in self._events:
            if kind == self.WORD and length > 0:
                k = int(np.searchsorted(first_char, tpos, side="right")) - 1
                starts.setdefault(k, sample)
        if sorted(starts) != list(range(len(first_char))):
            return audio, None
        bounds = [starts[k] for k in range(len(first_char))] + [len(audio)]
        return audio, bounds if bounds == sorted(bounds) else None


_ENGINE: _Espeak | None = None


def word_spans(audio: np.ndarray, bounds: list[int], thr: float = 1e-3) -> list[tuple[int, int]]:
    """Voiced [start, end) sample span of each word between consecutive word-start events."""
    spans = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        nz = np.nonzero(np.abs(audio[a:b]) > thr)[0]
        spans.append((a + int(nz[0]), a + int(nz[-1]) + 1) if len(nz) else (a, max(a + 1, b)))
    return spans


def synthesize(item: Item) -> tuple[float, list[list[float]] | None, list[list] | None]:
    """Render one item to a 16 kHz wav; return (duration in seconds, voiced [start, end] seconds of each
    whitespace-separated word of the text or None where espeak-ng's word events do not match them,
    [start seconds, phoneme] of each espeak-ng phoneme ("_..." are pauses) or None with the words)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    raw, bounds = _ENGINE.synth(item.voice, item.rate_wpm, item.pitch, item.text)
    sr = _ENGINE.sample_rate
    pcm = raw.astype(np.float32) / 32768.0
    audio = soxr.resample(pcm, sr, SAMPLE_RATE)
    scale = SAMPLE_RATE / sr
    spans = None if bounds is None else [(a * scale, b * scale) for a, b in word_spans(pcm, bounds)]
    # espeak pads both ends with a little silence; trim it, then add our own.
    nz = np.nonzero(np.abs(audio) > 1e-3)[0]
    off = 0
    if len(nz):
        off = max(0, nz[0] - 160)
        audio = audio[off: nz[-1] + 160]
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
    shift = len(lead) - off
    words = phones = None
    dur = len(audio) / SAMPLE_RATE

    def sec(x: float) -> float:
        return round(min(dur, max(0.0, (x + shift) / SAMPLE_RATE)), 3)

    if spans is not None:
        words = [[sec(a), sec(b)] for a, b in spans]
        phones = [[sec(a * scale), name] for a, name in _ENGINE.phones]
    return dur, words, phones


def synthesize_block(items: list[Item]) -> list[tuple[float, list[list[float]] | None, list[list] | None]]:
    """``synthesize`` for each item in order; called once per fresh worker process (see the module doc)."""
    return [synthesize(it) for it in items]


def render(items: list[Item], workers: int, block: int) -> list:
    """Every item's ``synthesize`` result, in order: blocks of ``block`` items, one fresh process each."""
    blocks = [items[i: i + block] for i in range(0, len(items), block)]
    with ProcessPoolExecutor(workers, max_tasks_per_child=1) as pool:  # spawn: a fresh libespeak-ng per block
        return [r for rs in pool.map(synthesize_block, blocks) for r in rs]


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
    ap.add_argument("--splits", choices=("train,test", "train", "test"), default="train,test",
                    help="render these splits only (test: the held-out clips alone, in seconds; the other "
                         "split's sentences are still drawn, so the held-out ones do not move)")
    ap.add_argument("--block", type=int, default=256,
                    help="clips per fresh synthesiser process (part of what fixes the audio: keep it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--words-per-lang", type=int, default=0,
                    help="draw the sentences from this many words of each language's list (0: all of it)")
    ap.add_argument("--extra-train-per-lang", type=int, default=0,
                    help="this many more training sentences, drawn after the held-out ones (so the held-out "
                         "split stays the one --train-per-lang gives)")
    ap.add_argument("--random-variants", type=int, default=0,
                    help="also this many random voice variants in the training split (voices.py: seeded "
                         "formant, pitch and voice-quality settings, written to OUT/espeak/espeak-ng-data, "
                         "named rvNNNN); the held-out split is unchanged")
    ap.add_argument("--variant-seed", type=int,
                    help="seed of the random voice variants alone (default: --seed, which also draws the "
                         "sentences): a new value gives new speakers for the same sentences")
    ap.add_argument("--train-variants", choices=("base", "wide"), default="base",
                    help="voice variants of the training split: base (9) or wide (the base ones plus "
                         "espeak-ng's named variants); the held-out split always uses TEST_VARIANTS")
    args = ap.parse_args()
    train_variants = WIDE_TRAIN_VARIANTS if args.train_variants == "wide" else TRAIN_VARIANTS
    if args.random_variants:
        from .voices import data_dir_with

        vseed = args.seed if args.variant_seed is None else args.variant_seed
        names = [f"rv{vseed * 100000 + k + 1}" for k in range(args.random_variants)]
        os.environ["ESPEAK_DATA_PATH"] = str(data_dir_with(names, args.out / "espeak"))  # the workers' too
        train_variants = train_variants + tuple(names)

    manifests: dict[str, list[dict]] = {split: [] for split in args.splits.split(",")}
    for li, lang in enumerate(LANGUAGES):
        locale, _ = LANGUAGES[lang]
        n_main = args.train_per_lang + args.test_per_lang
        sents = make_sentences(locale, n_main + args.extra_train_per_lang, seed=args.seed * 1000 + li,
                               words_per_lang=args.words_per_lang)
        train_s = sents[: args.train_per_lang] + sents[n_main:]
        test_s = sents[args.train_per_lang: n_main]
        assert not set(train_s) & set(test_s)
        for split, ss, variants in (("train", train_s, train_variants), ("test", test_s, TEST_VARIANTS)):
            if split not in args.splits.split(","):
                continue
            items = plan(args.out, split, lang, ss, variants, seed=args.seed * 1000 + li * 10 + (split == "test"))
            results = render(items, args.workers, args.block)
            durations = [d for d, _, _ in results]
            for it, (d, words, phones) in zip(items, results):
                manifests[split].append(dict(audio_filepath=it.path, text=it.text, lang=it.lang,
                                             duration=round(d, 3), voice=it.voice, words=words, phones=phones))
            print(f"{lang} {split}: {len(items)} clips, {sum(durations) / 3600:.2f} h, "
                  f"{sum(w is None for _, w, _ in results)} without word times", flush=True)
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
