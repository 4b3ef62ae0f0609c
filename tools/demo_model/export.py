"""Ship a trained checkpoint: copy the HF directory into onepass/assets/demo, check that transformers and
onepass load it and agree, and pick the bundled samples.

    python -m tools.demo_model.export --run /work/demo_corpus/run --corpus /work/demo_corpus [--weights hf_ema]

Writes onepass/assets/demo/{config.json, generation_config.json, model.safetensors, processor_config.json,
tokenizer.json, tokenizer_config.json} and onepass/assets/samples/{en-US,es-ES,de-DE}.wav + samples.json
(held-out clips: unseen sentences, unseen voices), and en-US-long.wav: the first LONG_SENTENCES English
held-out clips joined with seeded pauses of 0.3-1.0 s, a multi-sentence stream (issue 35).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[2]
FILES = ("config.json", "generation_config.json", "model.safetensors", "processor_config.json",
         "tokenizer.json", "tokenizer_config.json")
SAMPLE_LANGS = ("en-US", "es-ES", "de-DE")
LONG_SENTENCES = 7  # en-US-long.wav: about 19 s


def copy_model(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in FILES:
        shutil.copyfile(src / f, dst / f)
    size = sum((dst / f).stat().st_size for f in FILES)
    print(f"copied {src} -> {dst} ({size / 1e6:.1f} MB)")
    assert size <= 30e6, size


def hf_tokens(model, processor, audio: np.ndarray, lang: str, r: int) -> list[int]:
    inputs = processor(audio, sampling_rate=16000, language=lang)
    inputs["num_lookahead_tokens"] = r
    with torch.no_grad():
        out = model.generate(**inputs, return_dict_in_generate=True)
    blank = model.config.blank_token_id
    return [int(t) for t in out.sequences[0].tolist()[1:] if t != blank]


def check(model_dir: Path, rows: list[dict]) -> None:
    """transformers and onepass load the directory and give the same token ids at 1120 ms and 80 ms."""
    from transformers import AutoModelForRNNT, AutoProcessor

    import onepass

    hf = AutoModelForRNNT.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    proc = AutoProcessor.from_pretrained(str(model_dir))
    asr = onepass.load_model(str(model_dir))
    for r in rows:
        audio = sf.read(r["audio_filepath"], dtype="float32")[0]
        for chunk_ms, rc in ((1120, 13), (80, 0)):
            ours = asr.transcribe(audio, 16000, language=r["lang"], chunk_ms=chunk_ms)
            theirs = hf_tokens(hf, proc, audio, r["lang"], rc)
            same = list(ours.token_ids) == theirs
            print(f"{r['lang']} {chunk_ms:4d} ms same_tokens={same} | {ours.text!r} | ref {r['text']!r}")


def pick_samples(corpus: Path, out: Path) -> list[dict]:
    """One short held-out clip per language (the first under 3.5 s)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(x) for x in (corpus / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    chosen = []
    for lang in SAMPLE_LANGS:
        r = next(r for r in rows if r["lang"] == lang and r["duration"] < 3.5 and len(r["text"].split()) >= 5)
        name = f"{lang}.wav"
        shutil.copyfile(r["audio_filepath"], out / name)
        chosen.append(dict(audio_filepath=name, text=r["text"], lang=lang, duration=r["duration"],
                           voice=r["voice"]))
    long_rows = [r for r in rows if r["lang"] == "en-US"][:LONG_SENTENCES]
    rng = np.random.default_rng(35)
    pauses = [0.0] + [float(rng.uniform(0.3, 1.0)) for _ in long_rows[1:]]
    parts = []
    for r, p in zip(long_rows, pauses):
        parts += [np.zeros(int(round(p * 16000)), np.int16), sf.read(r["audio_filepath"], dtype="int16")[0]]
    audio = np.concatenate(parts)
    sf.write(out / "en-US-long.wav", audio, 16000, subtype="PCM_16")
    chosen.append(dict(audio_filepath="en-US-long.wav", text=" ".join(r["text"] for r in long_rows), lang="en-US",
                       duration=round(len(audio) / 16000, 3), voice=",".join(r["voice"] for r in long_rows)))
    (out / "samples.json").write_text(json.dumps(chosen, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return [dict(c, audio_filepath=str(out / c["audio_filepath"])) for c in chosen]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("/work/demo_corpus/run"))
    ap.add_argument("--corpus", type=Path, default=Path("/work/demo_corpus"))
    ap.add_argument("--dst", type=Path, default=REPO / "onepass/assets/demo")
    ap.add_argument("--samples", type=Path, default=REPO / "onepass/assets/samples")
    ap.add_argument("--weights", choices=("hf_last", "hf_ema"), default="hf_last",
                    help="the run's last weights or their moving average (ema_decay > 0)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    copy_model(args.run / args.weights, args.dst)
    samples = pick_samples(args.corpus, args.samples)
    check(args.dst, samples)


if __name__ == "__main__":
    main()
