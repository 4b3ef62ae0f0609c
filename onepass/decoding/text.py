"""Tokens -> transcript: language tags, clean text, words with times and confidence."""

from __future__ import annotations

import re
import unicodedata

from ..results import Word
from ..tokenizer import WORD_START, Tokenizer

TAG_IN_TEXT = re.compile(r"\s*<([a-z]{2,3}-[A-Z]{2})>")
SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:%)\]}»」』。，、！？])")
MULTI_SPACE = re.compile(r"\s{2,}")


def clean_text(text: str) -> tuple[str, list[str]]:
    """Strip language tags (returned in order) and tidy spaces: no double spaces,
    no space before punctuation, no leading/trailing space."""
    tags = TAG_IN_TEXT.findall(text)
    text = TAG_IN_TEXT.sub(" ", text)
    text = SPACE_BEFORE_PUNCT.sub(r"\1", MULTI_SPACE.sub(" ", text))
    return text.strip(), tags


def group_words(tokenizer: Tokenizer, token_ids: list[int]) -> list[list[int]]:
    """Indices of the tokens of each word: a word starts at a ``▁`` piece; language tags
    end a word and belong to none; a punctuation-only word joins the previous one."""
    groups: list[list[int]] = []
    open_word = False
    for i, token_id in enumerate(token_ids):
        if tokenizer.is_language_tag(token_id):
            open_word = False
            continue
        starts = tokenizer.piece(token_id).startswith(WORD_START)
        if starts and groups and _is_punctuation(tokenizer.piece_text([token_id])):
            starts = False
        if starts or not open_word:
            groups.append([])
            open_word = True
        groups[-1].append(i)
    return [g for g in groups if clean_text(tokenizer.piece_text([token_ids[i] for i in g]))[0]]


def _is_punctuation(text: str) -> bool:
    text = text.strip()
    return bool(text) and all(unicodedata.category(ch).startswith("P") for ch in text)


def make_word(tokenizer: Tokenizer, token_ids: list[int], frames: list[int], probs: list[float],
              group: list[int], frame_s: float) -> Word:
    text, _ = clean_text(tokenizer.piece_text([token_ids[i] for i in group]))
    confidence = sum(probs[i] for i in group) / len(group)
    return Word(text, frames[group[0]] * frame_s, (frames[group[-1]] + 1) * frame_s, confidence)


def words_from_tokens(tokenizer: Tokenizer, token_ids: list[int], frames: list[int], probs: list[float],
                      frame_s: float) -> list[Word]:
    return [make_word(tokenizer, token_ids, frames, probs, g, frame_s)
            for g in group_words(tokenizer, token_ids)]


class IncrementalText:
    """Text and completed words of a growing token list, from token ``start`` on.

    ``update`` returns the clean text, what was added since the last call, and the words that
    can no longer change (all but the last, open one; all of them when ``final``)."""

    def __init__(self, tokenizer: Tokenizer, frame_s: float, start: int = 0):
        self.tokenizer, self.frame_s = tokenizer, frame_s
        self.start = start  # first token of this text
        self.words_from = start  # first token of the word still open
        self.text = ""
        self.tags: list[str] = []

    def update(self, token_ids: list[int], frames: list[int], probs: list[float],
               final: bool = False) -> tuple[str, str, list[Word]]:
        text, self.tags = clean_text(self.tokenizer.piece_text(token_ids[self.start:]))
        delta = text[len(self.text):] if text.startswith(self.text) else text
        self.text = text
        tail = token_ids[self.words_from:]
        groups = group_words(self.tokenizer, tail)
        done = groups if final else groups[:-1]
        lo = self.words_from
        words = [make_word(self.tokenizer, tail, frames[lo:], probs[lo:], g, self.frame_s) for g in done]
        if final:
            self.words_from = len(token_ids)
        elif done:
            self.words_from += groups[-1][0]
        return text, delta, words
