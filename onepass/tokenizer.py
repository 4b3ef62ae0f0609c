"""Token pieces -> text, without merging repeated tokens.

Works from the piece strings of a SentencePiece model (``.nemo``) or a ``tokenizer.json``
(Hugging Face): ``▁`` starts a word, ``<0xNN>`` pieces are UTF-8 bytes (byte fallback),
``<xx-XX>`` pieces are language tags. Decoding is piece by piece, so "goodness" stays
"goodness" (transformers' ``decode`` would merge the repeated "s").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import OnePassError

WORD_START = "\u2581"
BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
LANGUAGE_TAG = re.compile(r"^<([a-z]{2,3}-[A-Z]{2})>$")
CONTROL = {"<unk>", "<s>", "</s>", "<pad>", "<blank>", "<mask>"}


class Tokenizer:
    def __init__(self, pieces: list[str], blank_id: int):
        self.pieces = pieces
        self.blank_id = blank_id

    @classmethod
    def from_tokenizer_json(cls, path: Path, vocab_size: int, blank_id: int) -> "Tokenizer":
        try:
            from tokenizers import Tokenizer as HFTokenizer

            tok = HFTokenizer.from_file(str(path))
            pieces = [tok.id_to_token(i) or "" for i in range(vocab_size)]
        except Exception as exc:  # tokenizers raises plain Exceptions on bad files
            raise OnePassError(f"cannot read tokenizer {path}: {exc}") from None
        return cls(pieces, blank_id)

    @classmethod
    def from_sentencepiece(cls, path: Path, vocab_size: int, blank_id: int) -> "Tokenizer":
        import sentencepiece as spm

        try:
            sp = spm.SentencePieceProcessor(model_file=str(path))
        except Exception as exc:
            raise OnePassError(f"cannot read SentencePiece model {path}: {exc}") from None
        n = sp.get_piece_size()
        pieces = [sp.id_to_piece(i) for i in range(n)] + [""] * max(0, vocab_size - n)
        return cls(pieces[:vocab_size], blank_id)

    @classmethod
    def from_vocab_file(cls, path: Path, vocab_size: int, blank_id: int) -> "Tokenizer":
        """tokens.txt ("piece id" per line, sherpa-onnx style) or a JSON list of pieces."""
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            pieces = list(json.loads(text))
        else:
            pieces = [line.rsplit(" ", 1)[0] for line in text.splitlines() if line.strip()]
        return cls(pieces[:vocab_size] + [""] * max(0, vocab_size - len(pieces)), blank_id)

    def piece(self, token_id: int) -> str:
        return self.pieces[token_id] if 0 <= token_id < len(self.pieces) else ""

    def is_language_tag(self, token_id: int) -> str | None:
        m = LANGUAGE_TAG.match(self.piece(token_id))
        return m.group(1) if m else None

    def piece_text(self, token_ids: list[int]) -> str:
        """Concatenate pieces (bytes decoded as UTF-8), ``▁`` -> space; no cleanup."""
        out, pending = [], bytearray()
        for token_id in token_ids:
            if token_id == self.blank_id:
                continue
            piece = self.piece(token_id)
            m = BYTE_PIECE.match(piece)
            if m:
                pending.append(int(m.group(1), 16))
                continue
            if pending:
                out.append(pending.decode("utf-8", errors="replace"))
                pending = bytearray()
            if piece in CONTROL:
                continue
            out.append(piece.replace(WORD_START, " "))
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)
