"""The fine-tuning measurement of docs/finetune.md: a small new domain (clinical English, words the
demo model has never heard) spoken by espeak-ng, plus a little of the demo corpus's own kind of speech.

    python -m tools.demo_model.domain_set --out /work/domain

Writes OUT/train.jsonl (50 domain sentences, each by 3 training voices, and 200 general sentences per
language from the demo corpus's training text: replay against forgetting; the voices are the demo
corpus's wide set of training variants, as the shipped model was trained on), OUT/test.jsonl (20 unseen
domain sentences by the held-out voices: new combinations of the same terms) and OUT/train_domain.jsonl
(the domain part alone). Seeded; regenerates the same files.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from .make_corpus import LANGUAGES, TEST_VARIANTS, WIDE_TRAIN_VARIANTS, make_sentences, plan, render

DRUGS = ["metoprolol", "lisinopril", "warfarin", "amoxicillin", "furosemide", "heparin", "atorvastatin",
         "levothyroxine", "prednisone", "ondansetron"]
CONDITIONS = ["tachycardia", "hypertension", "pneumonia", "sepsis", "hypothyroidism", "atrial fibrillation",
              "cellulitis", "bronchitis", "anemia", "dehydration"]
TESTS = ["an echocardiogram", "a colonoscopy", "an electrocardiogram", "a biopsy", "a lumbar puncture",
         "a chest radiograph", "an ultrasound", "a blood culture"]
TEMPLATES = [
    "The patient with {c} received {d} this morning.",
    "Start {d} for {c} and repeat {t} tomorrow.",
    "Her {c} improved after {d}.",
    "Order {t} to rule out {c}.",
    "Discontinue {d} before {t}.",
    "Is {d} safe with {c}?",
    "We suspect {c}, so schedule {t}.",
    "Continue {d} twice daily for {c}.",
]


def domain_sentences(seed: int = 0, train_n: int = 50, test_n: int = 20) -> tuple[list[str], list[str]]:
    """(training, test) sentences: distinct; every term of the test sentences occurs in training."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < train_n + test_n:
        s = rng.choice(TEMPLATES).format(d=rng.choice(DRUGS), c=rng.choice(CONDITIONS), t=rng.choice(TESTS))
        s = s[0].upper() + s[1:]
        if s not in seen:
            seen.add(s)
            out.append(s)
    train, test = out[:train_n], out[train_n:]
    known = {w.strip(".,?").lower() for s in train for w in s.split()}
    missing = {w.strip(".,?").lower() for s in test for w in s.split()} - known
    if missing:  # a test word never seen in training could not be learnt: swap such sentences out
        test = [s for s in test if not {w.strip(".,?").lower() for w in s.split()} & missing]
    return train, test


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--voices-per-sentence", type=int, default=3)
    ap.add_argument("--replay-per-lang", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    train_s, test_s = domain_sentences()
    items = []
    for v in range(args.voices_per_sentence):
        items += plan(args.out / f"v{v}", "train", "en-US", train_s, WIDE_TRAIN_VARIANTS, seed=9000 + v)
    test_items = plan(args.out, "test", "en-US", test_s, TEST_VARIANTS, seed=9100)
    replay = []
    for li, lang in enumerate(LANGUAGES):
        # the demo corpus's training text (make_corpus.py --words-per-lang 400: its first sentences)
        sents = make_sentences(LANGUAGES[lang][0], args.replay_per_lang, seed=li, words_per_lang=400)
        replay += plan(args.out / "replay", "train", lang, sents, WIDE_TRAIN_VARIANTS, seed=9200 + li)
    rows = {}
    for name, its in (("train_domain", items), ("test", test_items), ("replay", replay)):
        results = render(its, args.workers, 256)
        rows[name] = [dict(audio_filepath=it.path, text=it.text, lang=it.lang, duration=round(d, 3), voice=it.voice)
                      for it, (d, _, _) in zip(its, results)]
        print(f"{name}: {len(its)} clips, {sum(r['duration'] for r in rows[name]) / 60:.1f} min", flush=True)
    rows["train"] = rows["train_domain"] + rows["replay"]
    for name in ("train", "train_domain", "test"):
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[name])


if __name__ == "__main__":
    main()
