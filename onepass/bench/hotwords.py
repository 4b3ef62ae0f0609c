"""Phrase boosting measured: accuracy on held-out clips, and what it costs the step.

    python -m onepass.bench.hotwords [--manifest /work/heldout/test.jsonl] [--model demo]
        [--sizes 10 100] [--boost 3] [--depth-scaling 0.5] [--beams 1 4] [--streams 1 16 64] [--json out.json]

Accuracy: each utterance gets its own list: its ``--own`` rarest words (by frequency in the
held-out texts of its language; words of three letters or more) plus distractors, words of the
same language's held-out texts that the utterance does not contain, up to the list size.
Reported with and without boosting: recall of the listed own words (``min(ref, hyp)``
occurrences), WER, and insertions of distractors (hypothesis occurrences; the reference has none)
per 100 utterances. Offline transcription, the language given; greedy decoding (beam 1) and beam
search (``--beams``).

Cost: N streams of the en-US sample through one engine at ``--chunk-ms``, each with a list of
100 phrases or none; the mean step time over a whole run, interleaved runs, the median of
``--reps``. A benchmark prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..decoding.phrases import DEPTH_SCALING, hotword_settings
from ..evaluation import normalize, read_manifest, word_error_rate

SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "samples" / "en-US.wav"


def word_lists(entries, sizes: list[int], own: int, seed: int) -> dict[int, list[tuple[list[str], list[str]]]]:
    """Per list size, per utterance: (own words, distractors)."""
    by_lang = collections.defaultdict(collections.Counter)
    for e in entries:
        by_lang[e.lang].update(normalize(e.text).split())
    rng = random.Random(seed)
    out = {size: [] for size in sizes}
    for e in entries:
        words = normalize(e.text).split()
        counts = by_lang[e.lang]
        candidates = sorted({w for w in words if len(w) >= 3}, key=lambda w: (counts[w], w))
        mine = candidates[:own]
        pool = sorted(w for w in counts if w not in set(words))
        for size in sizes:
            out[size].append((mine, rng.sample(pool, min(len(pool), max(0, size - len(mine))))))
    return out


def score(refs: list[str], hyps: list[str], lists) -> dict:
    hits = listed = inserted = 0
    for ref, hyp, (mine, distract) in zip(refs, hyps, lists):
        r, h = collections.Counter(ref.split()), collections.Counter(hyp.split())
        for w in mine:
            listed += r[w]
            hits += min(r[w], h[w])
        inserted += sum(h[w] for w in distract)
    return {"recall": hits / max(1, listed), "listed_words": listed, "wer": word_error_rate(refs, hyps),
            "distractor_insertions_per_100": 100.0 * inserted / max(1, len(refs))}


def accuracy(asr, entries, sizes: list[int], own: int, boost: float | None, batch: int, seed: int,
             depth_scaling: float = DEPTH_SCALING) -> dict:
    from ..audio import load_for_model

    lists = word_lists(entries, sizes, own, seed)
    refs = [normalize(e.text) for e in entries]
    runs = {"none": None, **{str(size): lists[size] for size in sizes}}
    out = {}
    for name, per_utt in runs.items():
        hyps = []
        for at in range(0, len(entries), batch):
            part = entries[at:at + batch]
            audio = [load_for_model(str(e.audio_filepath))[0] for e in part]
            hw = None if per_utt is None else [replace(hotword_settings(m + d, boost), depth_scaling=depth_scaling)
                                               for m, d in per_utt[at:at + batch]]
            done = asr.transcribe_batch(audio, language=[e.lang for e in part], hotwords=hw)  # boost is in hw
            hyps += [normalize(t.text) for t in done]
        out[name] = {size: score(refs, hyps, lists[size]) for size in sizes}
    return out


def step_time(asr, streams: int, phrases: list[str] | None, chunk_ms: int) -> float:
    """Mean seconds per engine step over one run of ``streams`` copies of the sample."""
    from ..audio import load_for_model
    from ..engine import Engine, EngineConfig

    audio = load_for_model(str(SAMPLE))[0]
    engine = Engine(asr, EngineConfig(max_batch=streams, max_streams=streams, endpoint_blank_ms=None))
    ids = [engine.open("en-US", chunk_ms, hotwords=phrases) for _ in range(streams)]
    for sid in ids:
        engine.accept(sid, audio)
        engine.finish(sid)
    steps, spent = 0, 0.0
    while engine.has_work():
        t0 = time.perf_counter()
        engine.step()
        spent += time.perf_counter() - t0
        steps += 1
    return spent / max(1, steps)


def cost(asr, stream_counts: list[int], phrases: list[str], chunk_ms: int, reps: int) -> list[dict]:
    rows = []
    for n in stream_counts:
        step_time(asr, n, phrases, chunk_ms)  # warm-up (allocations, first tokenizer use)
        plain, boosted = [], []
        for _ in range(reps):  # interleaved: load from other jobs hits both alike
            plain.append(step_time(asr, n, None, chunk_ms))
            boosted.append(step_time(asr, n, phrases, chunk_ms))
        p, b = statistics.median(plain), statistics.median(boosted)
        rows.append({"streams": n, "plain_ms": 1000 * p, "boosted_ms": 1000 * b, "overhead": b / p - 1})
    return rows


def decoder_cost(stream_counts: list[int], frames: int, reps: int, seed: int = 0,
                 beams: tuple[int, ...] = ()) -> list[dict]:
    """Real-size prediction net and joint (13088 labels; ``bench.decoders``): one decoding call of
    ``frames`` encoder frames per stream, each stream with 100 random phrases of 2-4 pieces or none,
    both decoders (label looping with one flag read per iteration, as the eager step runs it), and beam
    search of each of ``beams`` hypotheses (a call in the middle of a stream: nothing final)."""
    import torch

    from ..decoding.beam import beam_decode, initial_beam_state
    from ..decoding.boosting import BoostPool, boosted_labels
    from ..decoding.greedy import greedy_decode, initial_decoder_state
    from ..decoding.label_looping import label_looping_decode
    from ..decoding.phrases import build_tree
    from .decoders import decoder_model

    m = decoder_model(4.8, seed)
    vocab, blank = m.config.vocab_size, m.config.blank_id
    rng = np.random.default_rng(seed)
    rows = []
    for n in stream_counts:
        pool = BoostPool(n + 1, blank, "cpu")
        nodes = []  # each stream's tree size
        for slot in range(1, n + 1):
            tree = build_tree([([int(x) for x in rng.integers(0, vocab - 1, int(rng.integers(2, 5)))], 2.0)
                               for _ in range(100)])
            pool.attach(slot, pool.add(tree))
            nodes.append(tree.nodes)
        slots = torch.arange(1, n + 1)
        enc = torch.randn(n, frames, m.config.pred_hidden)
        valid, off = torch.full((n,), frames), torch.zeros(n, dtype=torch.long)
        final = torch.zeros(n, dtype=torch.bool)
        runs = {"windowed": lambda st, b: greedy_decode(m, enc, valid, st, off, b),
                "label looping": lambda st, b: label_looping_decode(m, enc, valid, st, off, sync_every=1, boost=b),
                **{f"beam {k}": (lambda st, b: beam_decode(m, enc, valid, st, off, final, b, host_reads=True))
                   for k in beams}}
        for name, run in runs.items():
            times = {False: [], True: []}
            for _ in range(reps):
                for boosted in (False, True):
                    state = (initial_decoder_state(m, n) if not name.startswith("beam")
                             else initial_beam_state(m, n, int(name.split()[1])))
                    b = pool.rows(slots) if boosted else None
                    t0 = time.perf_counter()
                    run(state, b)
                    times[boosted].append(time.perf_counter() - t0)
            p, b = statistics.median(times[False]), statistics.median(times[True])
            rows.append({"decoder": name, "streams": n, "plain_ms": 1000 * p, "boosted_ms": 1000 * b,
                         "overhead": b / p - 1})
        # one label iteration's choice alone: the model's own maximum, then the boosted label on top of it
        logits = torch.randn(n, vocab)
        top, label = logits.max(dim=-1)
        inside = pool.rows(slots)
        inside.node.copy_(inside.root + torch.tensor([int(rng.integers(k)) for k in nodes]))  # a node of each tree
        own = _best_ms(lambda: logits.max(dim=-1), reps)
        boosted = _best_ms(lambda: boosted_labels(logits, inside, label, top), reps)
        rows.append({"decoder": "label choice", "streams": n, "plain_ms": own, "boosted_ms": own + boosted,
                     "overhead": boosted / own})
    return rows


def _best_ms(fn, reps: int, inner: int = 50) -> float:
    best = float("inf")
    for _ in range(max(3, reps)):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
    return 1000 * best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", default="/work/heldout/test.jsonl")
    ap.add_argument("--model", default="demo")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--own", type=int, default=2, help="own words per utterance (its rarest)")
    ap.add_argument("--boost", type=float, default=None, help="hotword boost (default: onepass's)")
    ap.add_argument("--depth-scaling", type=float, default=DEPTH_SCALING,
                    help=f"a later piece's bonus, times the boost (default: {DEPTH_SCALING:g})")
    ap.add_argument("--limit", type=int, default=None, help="first N utterances only")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--streams", type=int, nargs="*", default=[1, 16, 64])
    ap.add_argument("--chunk-ms", type=int, default=160)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--decoder-streams", type=int, nargs="*", default=[],
                    help="also time the decoders alone at real size (13088 labels) for these stream counts")
    ap.add_argument("--decoder-frames", type=int, default=2, help="encoder frames per decoding call (2: 160 ms)")
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 4],
                    help="decodings to measure: 1 = greedy, K > 1 = beam search of K (default: 1 4)")
    ap.add_argument("--accuracy", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import onepass

    from ..step import StepConfig

    asr = onepass.load_model(args.model)
    entries = read_manifest(args.manifest)[:args.limit]
    result = {"utterances": len(entries), "boost": args.boost, "depth_scaling": args.depth_scaling, "own": args.own}
    if args.accuracy:
        result["accuracy"] = {}
        print(f"{len(entries)} utterances, own words per list: {args.own}, boost: {args.boost or 'default'}, "
              f"depth scaling: {args.depth_scaling:g}")
        print("| decoding | list size | boosting | listed-word recall | listed-word errors | WER "
              "| distractor insertions / 100 utt |")
        print("|---|---|---|---|---|---|---|")
        for beam in args.beams:
            asr.configure_step(StepConfig(beam=beam))
            acc = accuracy(asr, entries, args.sizes, args.own, args.boost, args.batch, args.seed, args.depth_scaling)
            result["accuracy"][f"beam{beam}"] = acc
            name = "greedy" if beam == 1 else f"beam {beam}"
            for size in args.sizes:
                for run, label in (("none", "off"), (str(size), "on")):
                    sc = acc[run][size]
                    print(f"| {name} | {size} | {label} | {sc['recall']:.1%} | {1 - sc['recall']:.1%} | "
                          f"{sc['wer']:.1%} | {sc['distractor_insertions_per_100']:.2f} |")
    if args.decoder_streams:
        rows = decoder_cost(args.decoder_streams, args.decoder_frames, args.reps, args.seed,
                            tuple(b for b in args.beams if b > 1))
        result["decoder_time"] = rows
        print(f"\ndecoders alone at real size, {args.decoder_frames} frames per call, 100 phrases per stream vs none "
              "(label choice: one iteration's maximum over the labels, and with the boosted label after it)")
        print("| decoder | streams | without phrases | with phrases | overhead |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['decoder']} | {r['streams']} | {r['plain_ms']:.1f} ms | {r['boosted_ms']:.1f} ms | "
                  f"{r['overhead']:+.1%} |")
    if args.streams:
        pool = sorted({w for e in entries for w in normalize(e.text).split() if e.lang == "en-US"})
        phrases = random.Random(args.seed).sample(pool, min(100, len(pool)))
        result["step_time"] = {}
        for beam in args.beams:
            asr.configure_step(StepConfig(beam=beam))
            rows = cost(asr, args.streams, phrases, args.chunk_ms, args.reps)
            result["step_time"][f"beam{beam}"] = rows
            print(f"\nstep time, {'greedy' if beam == 1 else f'beam {beam}'}, {args.chunk_ms} ms chunks, "
                  f"100 phrases per stream vs none (median of {args.reps})")
            print("| streams | without phrases | with phrases | overhead |")
            print("|---|---|---|---|")
            for r in rows:
                print(f"| {r['streams']} | {r['plain_ms']:.1f} ms | {r['boosted_ms']:.1f} ms | {r['overhead']:+.1%} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
