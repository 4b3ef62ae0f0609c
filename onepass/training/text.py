"""Training targets: the text normaliser, and how well the tokenizer covers the training text."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

NORMALIZER = ("Unicode NFC, whitespace collapsed; case and punctuation kept (the model writes cased, "
              "punctuated text, so the targets must too)")
_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def normalize_target(text: str) -> str:
    """The training target of a manifest text (see ``NORMALIZER``)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


@dataclass(frozen=True)
class Coverage:
    """The tokenizer on the training text."""

    words: int
    tokens: int
    unknown_tokens: int  # <unk>: characters the tokenizer cannot write at all
    byte_tokens: int  # byte-fallback pieces <0xNN>: characters outside the vocabulary
    single_piece_words: int  # words that are one vocabulary piece
    new_words: int  # distinct words that need 3 or more pieces (most likely outside the model's vocabulary)
    byte_chars: list[tuple[str, int]] = field(default_factory=list)  # characters written as bytes, most frequent
    examples: list[str] = field(default_factory=list)  # frequent many-piece words

    @property
    def byte_rate(self) -> float:
        return self.byte_tokens / max(1, self.tokens)

    @property
    def unknown_rate(self) -> float:
        return self.unknown_tokens / max(1, self.tokens)

    def lines(self) -> list[str]:
        out = [f"tokenizer: {self.tokens} tokens for {self.words} words ({self.tokens / max(1, self.words):.2f} per "
               f"word); {self.single_piece_words / max(1, self.words):.1%} of words are one piece",
               f"tokenizer: out-of-vocabulary <unk> {self.unknown_rate:.2%} of tokens, byte fallback "
               f"{self.byte_rate:.2%} of tokens"]
        if self.byte_chars:
            out.append("tokenizer: characters written as bytes: "
                       + ", ".join(f"{c!r} x{n}" for c, n in self.byte_chars))
        if self.examples:
            out.append(f"tokenizer: {self.new_words} distinct words of 3+ pieces, e.g. " + ", ".join(self.examples))
        return out


def coverage(texts: list[str], encode, unk_id: int, byte_ids: set[int]) -> Coverage:
    """``encode(text) -> (ids, pieces)``; words split on whitespace and encoded alone."""
    words = tokens = unk = byte = single = 0
    chars: Counter[str] = Counter()
    many: Counter[str] = Counter()
    for text in texts:
        for word in text.split():
            ids, pieces = encode(word)
            words += 1
            tokens += len(ids)
            unk += sum(i == unk_id for i in ids)
            nbytes = sum(i in byte_ids for i in ids)
            byte += nbytes
            single += len(ids) == 1
            if nbytes:
                chars.update(ch for ch in word if any(i in byte_ids for i in encode(ch)[0]))
            if len(ids) >= 3:
                many[word.strip(".,;:!?\"'()")] += 1
    return Coverage(words, tokens, unk, byte, single, len(many), chars.most_common(8),
                    [w for w, _ in many.most_common(8)])


def is_byte_piece(piece: str) -> bool:
    return bool(_BYTE_PIECE.match(piece))
