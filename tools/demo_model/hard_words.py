"""The words a model gets wrong most often in streams of training clips (issue 35): the focus words of a
long-form training stage.

    python -m tools.demo_model.hard_words --model onepass/assets/demo --manifest /work/demo_corpus9/train.jsonl \
        --streams 90 --chunk-ms 1120 80 --out /work/hard_words.json

Streams of ``--per-stream`` training clips of one language joined with 0-1 s pauses (``longform.make_streams``,
the evaluation's own streams, from the training manifest: the held-out set is never read), transcribed
offline at each chunk size; every reference word's substitution or deletion on its stream's alignment
counts against that word. A word is hard when it occurs at least ``--min-count`` times and its error rate is
at least ``--min-rate`` and ``--factor`` times the rate of all words. The JSON holds the word list (the
normalised word: lowercase, no punctuation) per language with each word's count and rate; a training
config's ``focus`` section takes the word lists, copied in (train.py: clips with one of them are drawn
``weight`` times as often into long-form examples).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from .evaluate import normalize
from .evaluate_longform import transcribe
from .longform import align, join_audio, make_streams


def word_errors(refs: list[list[str]], hyps: list[str]) -> tuple[Counter, Counter]:
    """(occurrences, errors) per normalised reference word over streams: refs per stream and sentence."""
    seen, wrong = Counter(), Counter()
    for rs, h in zip(refs, hyps):
        words = [w for r in rs for w in r.split()]
        ops, _ = align(words, h.split())
        for w, op in zip(words, ops):
            seen[w] += 1
            wrong[w] += op != "ok"
    return seen, wrong


def error_rate(seen: Counter, wrong: Counter) -> float:
    """The error rate of all words counted."""
    return sum(wrong.values()) / max(1, sum(seen.values()))


def hard(seen: Counter, wrong: Counter, min_count: int, min_rate: float, factor: float) -> dict[str, list]:
    """{word: [count, error rate]} of the hard words, hardest first."""
    overall = error_rate(seen, wrong)
    out = {w: [n, round(wrong[w] / n, 3)] for w, n in seen.items()
           if n >= min_count and wrong[w] / n >= max(min_rate, factor * overall)}
    return dict(sorted(out.items(), key=lambda kv: -kv[1][1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="onepass/assets/demo")
    ap.add_argument("--manifest", required=True, help="the training manifest")
    ap.add_argument("--streams", type=int, default=90, help="streams in all (languages in turn)")
    ap.add_argument("--per-stream", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chunk-ms", type=int, nargs="+", default=[1120, 80])
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--min-rate", type=float, default=0.2)
    ap.add_argument("--factor", type=float, default=3.0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import onepass
    import soundfile as sf

    rows = [json.loads(x) for x in Path(args.manifest).read_text(encoding="utf-8").splitlines() if x.strip()]
    streams = make_streams(rows, args.streams, args.per_stream, args.seed)
    asr = onepass.load_model(args.model, backend="torch")
    result: dict[str, dict] = {}
    for lang in sorted({st["lang"] for st in streams}):
        seen, wrong = Counter(), Counter()
        part = [st for st in streams if st["lang"] == lang]
        refs = [[normalize(r["text"]) for r in st["rows"]] for st in part]
        # one language's streams in memory at a time (1,500 streams of six clips: about 1.7 GB in all)
        audio = [join_audio([sf.read(r["audio_filepath"], dtype="float32")[0] for r in st["rows"]], st["pauses"])
                 for st in part]
        for c in args.chunk_ms:
            hyps = transcribe(asr, audio, [lang] * len(part), "offline", c)
            s, w = word_errors(refs, [normalize(h) for h in hyps])
            seen.update(s)
            wrong.update(w)
        words = hard(seen, wrong, args.min_count, args.min_rate, args.factor)
        rate = error_rate(seen, wrong)
        result[lang] = {"word_error_rate": round(rate, 4), "words_counted": sum(seen.values()), "hard": words}
        print(f"{lang}: {sum(seen.values())} words, error rate {rate:.1%}; {len(words)} hard: "
              + ", ".join(f"{w} {r:.0%} ({n})" for w, (n, r) in words.items()), flush=True)
    args.out.write_text(json.dumps({"model": args.model, "chunk_ms": args.chunk_ms, "streams": args.streams,
                                    "seed": args.seed, "languages": result}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
