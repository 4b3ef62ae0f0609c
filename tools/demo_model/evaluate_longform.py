"""Long-form accuracy of a model (issue 35): streams of held-out clips joined with pauses, against the same
clips alone.

    python -m tools.demo_model.evaluate_longform --model onepass/assets/demo --manifest /work/heldout/test.jsonl \
        --streams 100 --per-stream 6 --chunk-ms 1120 80 [--mode offline stream] [--json]

Stream k takes ``--per-stream`` clips of one language (languages in turn, clips drawn without replacement
inside a stream, seeded) joined with pauses of digital silence uniform in 0 ... ``--pause-max`` s. For each
chunk size and mode: the WER of the streams (every stream's normalised transcript against its clips'
texts joined), the WER of the same clips transcribed alone (with repeats, so both figures weigh the same
words), and the sentences lost (more than half of a sentence's words deleted on the alignment of its
stream, ``longform.sentence_losses``; also counted among the sentences the model gets right alone: the
issue's tests use only those), and the WER by a word's place in its sentence, in the stream and
alone (``position_errors``: the joins cost the first words of the later sentences), and the streams that
pass the default suite's test (none of its sentences lost, its WER within 0.05 of its sentences alone).
``--right-alone`` builds the streams from the clips the model gets right alone only, as the tests do.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jiwer
import soundfile as sf

from .evaluate import normalize
from .longform import align, join_audio, make_streams, sentence_losses


def transcribe(asr, audios: list, langs: list[str], mode: str, chunk_ms: int, batch: int = 8) -> list[str]:
    hyps = [""] * len(audios)
    if mode == "offline":
        for lang in sorted(set(langs)):
            idx = [i for i, lg in enumerate(langs) if lg == lang]
            for s in range(0, len(idx), batch):
                part = idx[s: s + batch]
                for i, o in zip(part, asr.transcribe_batch([audios[i] for i in part], language=lang, chunk_ms=chunk_ms)):
                    hyps[i] = o.text
    else:
        step = int(16000 * chunk_ms / 1000)
        for i, (a, lang) in enumerate(zip(audios, langs)):
            session = asr.stream(language=lang, chunk_ms=chunk_ms)
            for s in range(0, len(a), step):
                session.accept(a[s: s + step], 16000)
            hyps[i] = session.finish().text
    return hyps


def position_errors(refs: list[list[str]], long_hyp: list[str], alone: list[str]) -> dict[str, list[float]]:
    """Word error rate by a word's place in its sentence (first, second, middle, last): [in the stream, the
    same words alone], each word's substitution or deletion plus the insertions after it, on the alignment
    of its whole stream and of its clip alone. Where the joins cost: the first words of a later sentence."""
    errs: dict[str, list[int]] = {k: [0, 0, 0] for k in ("first", "second", "middle", "last")}
    k_alone = 0
    for rs, h in zip(refs, long_hyp):
        ops, ins = align([w for ws in rs for w in ws.split()], h.split())
        k = 0
        for ref in rs:
            ws = ref.split()
            a_ops, a_ins = align(ws, alone[k_alone].split())
            k_alone += 1
            for i in range(len(ws)):
                place = "first" if i == 0 else "second" if i == 1 else "last" if i == len(ws) - 1 else "middle"
                e = errs[place]
                e[0] += (ops[k + i] != "ok") + ins[k + i]
                e[1] += (a_ops[i] != "ok") + a_ins[i]
                e[2] += 1
            k += len(ws)
    return {p: [round(s / max(1, n), 4), round(a / max(1, n), 4)] for p, (s, a, n) in errs.items()}


def lost_of_right_alone(refs: list[list[str]], lost: list[list[bool]], alone: list[str]) -> tuple[int, int]:
    """(sentences the model gets right alone, how many of them a stream loses): refs and ``lost`` per
    stream and sentence, ``alone`` the normalised transcripts of the clips alone in the same order."""
    right = [h == ref for h, ref in zip(alone, (ref for rs in refs for ref in rs), strict=True)]
    return sum(right), sum(r and x for r, x in zip(right, (x for xs in lost for x in xs), strict=True))


def read_predictions(path: str) -> dict[str, dict]:
    """The rows of an `onepass eval --predictions` file (text, pred_text, ...) by audio_filepath."""
    rows = [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
    return {d["audio_filepath"]: d for d in rows}


def evaluate(asr, streams: list[dict], mode: str, chunk_ms: int, alone_predictions: str | None = None) -> dict:
    cache: dict[str, object] = {}
    for st in streams:
        for r in st["rows"]:
            if r["audio_filepath"] not in cache:
                cache[r["audio_filepath"]] = sf.read(r["audio_filepath"], dtype="float32")[0]
    t0 = time.perf_counter()
    clip_rows = [r for st in streams for r in st["rows"]]
    long_audio = [join_audio([cache[r["audio_filepath"]] for r in st["rows"]], st["pauses"]) for st in streams]
    long_hyp = transcribe(asr, long_audio, [st["lang"] for st in streams], mode, chunk_ms)
    pred_file = alone_predictions.format(chunk=chunk_ms) if alone_predictions else None
    preds = read_predictions(pred_file) if pred_file and Path(pred_file).exists() else {}
    if all(r["audio_filepath"] in preds for r in clip_rows):
        alone = [preds[r["audio_filepath"]]["pred_text"] for r in clip_rows]
    else:  # no file, or one still being written
        pred_file = None
        alone = transcribe(asr, [cache[r["audio_filepath"]] for r in clip_rows], [r["lang"] for r in clip_rows],
                           mode, chunk_ms)
    refs = [[normalize(r["text"]) for r in st["rows"]] for st in streams]
    lost = [sentence_losses(rs, normalize(h)) for rs, h in zip(refs, long_hyp)]
    right_alone, lost_right = lost_of_right_alone(refs, lost, [normalize(h) for h in alone])
    passing, k = 0, 0
    for rs, h, ls in zip(refs, long_hyp, lost):  # the default suite's test, per stream
        mine = [normalize(a) or "<empty>" for a in alone[k: k + len(rs)]]
        k += len(rs)
        passing += not any(ls) and jiwer.wer(" ".join(rs), normalize(h) or "<empty>") <= jiwer.wer(rs, mine) + 0.05
    return dict(
        chunk_ms=chunk_ms, mode=mode, streams=len(streams), sentences=len(clip_rows),
        seconds=round(sum(len(a) for a in long_audio) / 16000, 1),
        wer_alone=round(jiwer.wer([normalize(r["text"]) for r in clip_rows], [normalize(h) or "<empty>" for h in alone]), 4),
        wer_stream=round(jiwer.wer([" ".join(rs) for rs in refs], [normalize(h) or "<empty>" for h in long_hyp]), 4),
        sentences_lost=sum(map(sum, lost)),
        streams_with_a_loss=sum(any(x) for x in lost),
        first_sentence_only=sum(all(x[1:]) for x in lost),
        right_alone=right_alone, lost_of_right_alone=lost_right, streams_passing=passing,
        errors_by_place=position_errors(refs, [normalize(h) for h in long_hyp], [normalize(h) for h in alone]),
        time_s=round(time.perf_counter() - t0, 1), alone_from=pred_file or "transcribed here",
        example=dict(ref=" ".join(refs[0]), hyp=normalize(long_hyp[0])),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="onepass/assets/demo")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--per-stream", type=int, default=6)
    ap.add_argument("--pause-max", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=35)
    ap.add_argument("--chunk-ms", type=int, nargs="+", default=[1120, 80])
    ap.add_argument("--mode", nargs="+", default=["offline"], choices=["offline", "stream"])
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--beam", type=int, default=1, help="hypotheses per stream (1: greedy, the default decoding)")
    ap.add_argument("--alone-predictions", help="the clips alone from this `onepass eval --predictions` file of "
                    "the same model ({chunk} = the chunk size) when it exists, instead of transcribing them again")
    ap.add_argument("--right-alone", action="store_true", help="streams of only the clips the model gets right "
                    "alone (by --alone-predictions, per chunk size): the default suite's test at scale")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    args = ap.parse_args()
    import onepass

    rows = [json.loads(x) for x in Path(args.manifest).read_text(encoding="utf-8").splitlines() if x.strip()]
    if args.right_alone and not args.alone_predictions:
        ap.error("--right-alone needs --alone-predictions")
    streams = [] if args.right_alone else make_streams(rows, args.streams, args.per_stream, args.seed, args.pause_max)
    asr = onepass.load_model(args.model, backend=args.backend, beam=args.beam)
    for c in args.chunk_ms:
        if args.right_alone:
            preds = read_predictions(args.alone_predictions.format(chunk=c))
            right = {f for f, d in preds.items() if normalize(d["pred_text"]) == normalize(d["text"])}
            streams = make_streams([r for r in rows if r["audio_filepath"] in right], args.streams, args.per_stream,
                                   args.seed, args.pause_max)
        for m in args.mode:
            res = evaluate(asr, streams, m, c, args.alone_predictions)
            if args.json:
                print(json.dumps(res, ensure_ascii=False), flush=True)
            else:
                print(f"{c} ms {m}: {res['streams']} streams, {res['sentences']} sentences, {res['seconds']} s; "
                      f"WER alone {res['wer_alone']:.2%}, stream {res['wer_stream']:.2%}; sentences lost "
                      f"{res['sentences_lost']} (streams with a loss {res['streams_with_a_loss']}, first sentence "
                      f"only {res['first_sentence_only']}; of the {res['right_alone']} sentences right alone "
                      f"{res['lost_of_right_alone']}); streams passing the default suite's test "
                      f"{res['streams_passing']}; {res['time_s']} s", flush=True)
                print("  WER by a word's place in its sentence, stream / alone: " + ", ".join(
                    f"{p} {s:.1%} / {a:.1%}" for p, (s, a) in res["errors_by_place"].items()), flush=True)


if __name__ == "__main__":
    main()
