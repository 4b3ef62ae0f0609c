#!/usr/bin/env python3
"""NeMo's offline text for token id sequences: the reference for onepass's text rule.

Run with the NeMo virtualenv (README.md in this folder):

    /work/nemo-venv/bin/python tools/nemo_fixtures/make_text_references.py

For each fixture ``.nemo`` in tests/fixtures/nemo, NeMo 3.0 restores the model, switches on
``strip_lang_tags`` (as the released Nemotron 3.5 decoding config does) and decodes (a) the token ids
of every recorded case and (b) seeded random sequences drawn to hit the hard spots: punctuation
pieces after ``▁`` pieces and after bare ``▁``, language tags after spaces, byte-fallback runs (valid and
truncated UTF-8), ``<unk>`` and control pieces. The text is
``model.decoding.decode_tokens_to_str_with_strip_punctuation(ids)``, the function NeMo's offline
``rnnt_decoder_predictions_tensor`` (and ``transcribe``) uses for ``Hypothesis.text``.
Writes tests/fixtures/nemo/text_references.json.
"""
from __future__ import annotations

import json
import logging as pylogging
import random
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "nemo"
MODELS = ("tiny_nemotron35", "tiny_speech_en")
SEQUENCES_PER_MODEL = 400
SEED = 2026


def token_classes(pieces: list[str]) -> dict[str, list[int]]:
    def punct(p: str) -> bool:
        return any(unicodedata.category(c).startswith("P") for c in p)

    classes = {
        "word": [i for i, p in enumerate(pieces) if p.startswith("\u2581") and len(p) > 1 and not punct(p)],
        "inner": [i for i, p in enumerate(pieces) if not p.startswith(("\u2581", "<")) and p and not punct(p)],
        "punct": [i for i, p in enumerate(pieces) if punct(p) and not p.startswith("<")],
        "space": [i for i, p in enumerate(pieces) if p == "\u2581"],
        "tag": [i for i, p in enumerate(pieces) if p.startswith("<") and p.endswith(">") and "-" in p],
        "byte": [i for i, p in enumerate(pieces) if p.startswith("<0x")],
        "special": [i for i, p in enumerate(pieces) if p in ("<unk>", "<s>", "</s>")],
    }
    return {k: v for k, v in classes.items() if v}


def random_sequence(rng: random.Random, classes: dict[str, list[int]], pieces: list[str]) -> list[int]:
    weights = {"word": 6, "inner": 4, "punct": 4, "space": 2, "tag": 2, "byte": 1, "special": 0.3}
    names = [k for k in weights if k in classes]
    out: list[int] = []
    for _ in range(rng.randint(1, 24)):
        kind = rng.choices(names, [weights[k] for k in names])[0]
        if kind == "byte":  # a valid character or a truncated/invalid sequence
            ch = rng.choice("äöüßéñ€😀")
            data = ch.encode("utf-8")
            if rng.random() < 0.4:
                data = data[: rng.randint(1, len(data))] if len(data) > 1 else bytes([rng.randint(0x80, 0xFF)])
            out.extend(pieces.index(f"<0x{b:02X}>") for b in data)
        else:
            out.append(rng.choice(classes[kind]))
    return out


def main() -> None:
    pylogging.disable(pylogging.WARNING)
    from nemo.collections.asr.models import ASRModel
    from nemo.utils import logging as nemo_logging

    nemo_logging.setLevel(pylogging.ERROR)
    refs = json.loads((FIXTURES / "references.json").read_text())
    rng = random.Random(SEED)
    out = {"generator": "tools/nemo_fixtures/make_text_references.py", "nemo_version": refs["nemo_version"],
           "decoding": "model.decoding.decode_tokens_to_str_with_strip_punctuation, strip_lang_tags=True",
           "models": {}}
    for name in MODELS:
        model = ASRModel.restore_from(str(FIXTURES / f"{name}.nemo"), map_location="cpu").eval()
        model.decoding.set_strip_lang_tags(True)
        pieces = list(model.tokenizer.vocab)
        classes = token_classes(pieces)
        seqs = [[int(t) for t in c["token_ids"]] for c in refs["cases"] if c["model"] == name]
        seqs += [random_sequence(rng, classes, pieces) for _ in range(SEQUENCES_PER_MODEL)]
        cases = [{"token_ids": ids, "text": model.decoding.decode_tokens_to_str_with_strip_punctuation(ids)}
                 for ids in seqs]
        out["models"][name] = {
            "supported_punctuation": sorted(model.decoding.supported_punctuation or ()),
            "cases": cases,
        }
        print(f"{name}: {len(cases)} cases, punctuation {out['models'][name]['supported_punctuation']}")
    (FIXTURES / "text_references.json").write_text(json.dumps(out, ensure_ascii=False, indent=0) + "\n",
                                                  encoding="utf-8")


if __name__ == "__main__":
    main()
