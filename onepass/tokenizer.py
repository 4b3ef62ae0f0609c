"""Token pieces -> text, without merging repeated tokens.

Works from the piece strings of a SentencePiece model (``.nemo``) or a ``tokenizer.json``
(Hugging Face): ``▁`` starts a word, ``<0xNN>`` pieces are UTF-8 bytes (byte fallback),
``<xx-XX>`` pieces are language tags. Decoding is piece by piece, so "goodness" stays
"goodness" (transformers' ``decode`` would merge the repeated "s").
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path

from .errors import OnePassError

WORD_START = "\u2581"
BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
LANGUAGE_TAG = re.compile(r"^<([a-z]{2,3}-[A-Z]{2})>$")
UNKNOWN = "<unk>"  # SentencePiece decodes it as " \u2047 "
CONTROL = {"<s>", "</s>", "<pad>", "<blank>", "<mask>"}  # decoded as nothing
_SPECIAL_PIECE = re.compile(r"^(\[.*\]|<.*>|##.*|\u2581.*|\s*)$", re.DOTALL)


class Tokenizer:
    def __init__(self, pieces: list[str], blank_id: int, encoder=None):
        self.pieces = pieces
        self.blank_id = blank_id
        self._encoder = encoder  # text -> piece ids (the model's own tokenizer), or None: longest match

    def encode(self, text: str) -> list[int]:
        """Piece ids of ``text`` as the model's tokenizer splits it (for phrase boosting); without
        one (a bare vocabulary file), the longest piece that matches, word by word."""
        if self._encoder is not None:
            return [i for i in self._encoder(text) if 0 <= i < len(self.pieces)]
        return _longest_match(self._piece_ids, text)

    @functools.cached_property
    def _piece_ids(self) -> dict[str, int]:
        ids: dict[str, int] = {}
        for i, piece in enumerate(self.pieces):
            if piece and i != self.blank_id and not LANGUAGE_TAG.match(piece) and piece not in CONTROL:
                ids.setdefault(piece, i)
        return ids

    @classmethod
    def from_tokenizer_json(cls, path: Path, vocab_size: int, blank_id: int) -> "Tokenizer":
        try:
            from tokenizers import Tokenizer as HFTokenizer

            tok = HFTokenizer.from_file(str(path))
            pieces = [tok.id_to_token(i) or "" for i in range(vocab_size)]
        except Exception as exc:  # tokenizers raises plain Exceptions on bad files
            raise OnePassError(f"cannot read tokenizer {path}: {exc}") from None
        return cls(pieces, blank_id, _Encoder("json", path.read_bytes()))

    @classmethod
    def from_sentencepiece(cls, path: Path, vocab_size: int, blank_id: int) -> "Tokenizer":
        import sentencepiece as spm

        try:
            sp = spm.SentencePieceProcessor(model_file=str(path))
        except Exception as exc:
            raise OnePassError(f"cannot read SentencePiece model {path}: {exc}") from None
        n = sp.get_piece_size()
        pieces = [sp.id_to_piece(i) for i in range(n)] + [""] * max(0, vocab_size - n)
        return cls(pieces[:vocab_size], blank_id, _Encoder("sentencepiece", sp.serialized_model_proto()))

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

    @functools.cached_property
    def punctuation(self) -> frozenset[str]:
        """Punctuation characters (Unicode category P) of pieces that are not special and do not
        start a word: NeMo's text has no whitespace before them (``onepass.decoding.text``)."""
        return frozenset(ch for piece in self.pieces if not _SPECIAL_PIECE.match(piece)
                         for ch in piece if unicodedata.category(ch).startswith("P"))


class _Encoder:
    """The model's own tokenizer as text -> ids, kept as bytes (picklable), loaded on first use."""

    def __init__(self, kind: str, data: bytes):
        self.kind, self.data = kind, data
        self._impl = None

    def __getstate__(self):
        return {"kind": self.kind, "data": self.data, "_impl": None}

    def __call__(self, text: str) -> list[int]:
        if self._impl is None:
            if self.kind == "json":
                from tokenizers import Tokenizer as HFTokenizer

                tok = HFTokenizer.from_str(self.data.decode("utf-8"))
                self._impl = lambda t: tok.encode(t, add_special_tokens=False).ids
            else:
                import sentencepiece as spm

                sp = spm.SentencePieceProcessor(model_proto=self.data)
                self._impl = sp.encode
        return list(self._impl(text))


def _longest_match(ids: dict[str, int], text: str) -> list[int]:
    """Word by word (each word with its leading ``▁``), the longest known piece first; a
    character no piece covers is skipped."""
    out = []
    longest = max((len(p) for p in ids), default=0)
    for word in text.split():
        rest = WORD_START + word
        while rest:
            for size in range(min(longest, len(rest)), 0, -1):
                if rest[:size] in ids:
                    out.append(ids[rest[:size]])
                    rest = rest[size:]
                    break
            else:
                rest = rest[1:]
    return out


def decode_bytes(data: bytes) -> str:
    """UTF-8 as SentencePiece decodes byte pieces: one U+FFFD per byte that does not start a
    valid sequence (Python's ``errors="replace"`` would merge a truncated sequence into one)."""
    out, i = [], 0
    while i < len(data):
        lead = data[i]
        size = (1 if lead < 0x80 else 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF
                else 4 if 0xF0 <= lead <= 0xF4 else 0)
        try:
            out.append(data[i:i + size].decode("utf-8") if size else "\ufffd")
            i += size or 1
        except UnicodeDecodeError:
            out.append("\ufffd")
            i += 1
    return "".join(out)
