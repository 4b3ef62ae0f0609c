"""Rebuild the demo model's SentencePiece model (the training loop needs it; the shipped HF directory keeps
only its tokenizer.json) and check it against a shipped tokenizer.json, piece by piece.

    python -m tools.demo_model.rebuild_spm --out /work/demo_corpus4/run18 [--check onepass/assets/demo]

The shipped tokenizer was trained (stage 1, build.train_sentencepiece) on the first 4,000 training
sentences of each language, which make_corpus.py draws in a fixed, seeded order: the same text again gives
the same pieces. Exit status 1 when they differ from --check's tokenizer.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .build import train_sentencepiece
from .make_corpus import LANGUAGES, make_sentences

REPO = Path(__file__).resolve().parents[2]


def stage1_texts(per_lang: int = 4000, held_out: int = 150, words_per_lang: int = 400, seed: int = 0) -> list[str]:
    texts = []
    for li, lang in enumerate(LANGUAGES):
        locale, _ = LANGUAGES[lang]
        texts += make_sentences(locale, per_lang + held_out, seed=seed * 1000 + li, words_per_lang=words_per_lang)[:per_lang]
    return texts


def spm_pieces(model_file: str | Path) -> list[str]:
    """The pieces of a SentencePiece model, by id."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def shipped_pieces(model_dir: Path) -> list[str]:
    vocab = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    return sorted(vocab, key=vocab.get) if isinstance(vocab, dict) else [v[0] for v in vocab]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for demo_spm.model / demo_spm.vocab")
    ap.add_argument("--check", type=Path, default=REPO / "onepass" / "assets" / "demo",
                    help="HF model directory whose tokenizer.json must match (default: %(default)s)")
    ap.add_argument("--vocab-size", type=int, default=640)
    args = ap.parse_args()
    ours = spm_pieces(train_sentencepiece(stage1_texts(), args.out, args.vocab_size))
    theirs = shipped_pieces(args.check)
    diff = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    if len(ours) != len(theirs) or diff:
        print(f"rebuilt tokenizer differs from {args.check}: {len(ours)} vs {len(theirs)} pieces, "
              f"{len(diff)} differ (first ids {diff[:5]})")
        raise SystemExit(1)
    print(f"{args.out / 'demo_spm.model'}: {len(ours)} pieces, identical to {args.check / 'tokenizer.json'}")


if __name__ == "__main__":
    main()
