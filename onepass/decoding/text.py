"""Tokens -> transcript text, words with times and confidence, language tags.

The text rule is NeMo's offline text (``decode_tokens_to_str_with_strip_punctuation`` with
language tags stripped), written once, here:

1. pieces are joined as SentencePiece decodes them: ``▁`` -> space, ``<unk>`` -> `` ⁇ ``, control
   pieces (``<s>``, ``</s>``, ``<pad>``, ...) -> nothing, runs of ``<0xNN>`` byte pieces -> UTF-8 with
   one U+FFFD per byte that does not start a valid sequence;
2. one whitespace character is removed before each punctuation mark the vocabulary has as a piece
   of its own (a piece that does not start with ``▁`` and is not ``<...>``, ``[...]``, ``##...``);
3. language tags ``<xx-XX>`` are removed together with the whitespace before them;
4. leading and trailing whitespace is removed. Nothing else: two spaces stay two spaces.

Words are the whitespace-separated words of that text; a word's tokens are the tokens its
characters come from, its times those tokens' frames. Streaming text is the same rule applied to a
growing token list: ``IncrementalText`` never retracts what it emitted, so it holds back trailing
whitespace (the next piece may be punctuation or a tag, which removes it) and a trailing run of
byte pieces (the next byte may complete a character) until the next token or the end decides.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..results import Word
from ..tokenizer import BYTE_PIECE, CONTROL, UNKNOWN, WORD_START, Tokenizer, decode_bytes

TAG_WITH_SPACE = re.compile(r"\s*<[a-z]{2,3}-[A-Z]{2}>")


@dataclass
class Chars:
    """Text with, per character, the first and last token it comes from (byte runs: the
    run's tokens) and the token its rendering depends on from (a byte run's first token)."""

    text: str
    first: list[int]
    last: list[int]
    run: list[int]

    def keep(self, keep: list[bool]) -> "Chars":
        pick = [i for i, k in enumerate(keep) if k]
        return Chars("".join(self.text[i] for i in pick), [self.first[i] for i in pick],
                     [self.last[i] for i in pick], [self.run[i] for i in pick])


class TextRule:
    """The text rule of one vocabulary (see the module docstring)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        punct = tokenizer.punctuation
        self.space_before_punct = (re.compile(r"\s(?=[%s])" % "".join(re.escape(p) for p in sorted(punct)))
                                   if punct else None)

    def raw(self, token_ids: list[int], offset: int = 0) -> tuple[Chars, bool]:
        """Step 1 for ``token_ids`` (token indices from ``offset``); also whether the last
        token is a byte piece (its run may still change)."""
        text, first, last, run = [], [], [], []
        pending: list[tuple[int, int]] = []  # (token index, byte) of the open byte run

        def close_run():
            data = bytes(b for _, b in pending)
            pos = 0
            for ch in decode_bytes(data):
                n = len(ch.encode("utf-8")) if ch != "\ufffd" else 1
                text.append(ch), first.append(pending[pos][0]), last.append(pending[pos + n - 1][0])
                run.append(pending[0][0])
                pos += n
            pending.clear()

        tail_bytes = False
        for k, token_id in enumerate(token_ids):
            i = offset + k
            piece = self.tokenizer.piece(token_id)
            m = BYTE_PIECE.match(piece)
            tail_bytes = bool(m)
            if m:
                pending.append((i, int(m.group(1), 16)))
                continue
            if pending:
                close_run()
            if token_id == self.tokenizer.blank_id or piece in CONTROL:
                continue
            s = " \u2047 " if piece == UNKNOWN else piece.replace(WORD_START, " ")
            text.extend(s), first.extend([i] * len(s)), last.extend([i] * len(s)), run.extend([i] * len(s))
        if pending:
            close_run()
        return Chars("".join(text), first, last, run), tail_bytes

    def apply(self, chars: Chars, at_start: bool) -> Chars:
        """Steps 2-3, and step 4's leading strip when ``chars`` starts the text."""
        if self.space_before_punct is not None:
            drop = {m.start() for m in self.space_before_punct.finditer(chars.text)}
            if drop:
                chars = chars.keep([i not in drop for i in range(len(chars.text))])
        spans = [m.span() for m in TAG_WITH_SPACE.finditer(chars.text)]
        if spans:
            keep = [True] * len(chars.text)
            for a, b in spans:
                keep[a:b] = [False] * (b - a)
            chars = chars.keep(keep)
        if at_start:
            lead = len(chars.text) - len(chars.text.lstrip())
            if lead:
                chars = chars.keep([i >= lead for i in range(len(chars.text))])
        return chars

    def text(self, token_ids: list[int]) -> str:
        """The text of a whole token list."""
        return self.apply(self.raw(token_ids)[0], at_start=True).text.strip()


# Punctuation after which a word cannot go on (Unicode Po, Pe, Pf; not apostrophes, which sit inside
# words), and scripts written without spaces between words, where any piece may end a word.
_NOT_WORD_END = frozenset("'\u2019\u02bc")
_NO_SPACE_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR", "TIBETAN")


def ends_word(tokenizer: Tokenizer, token_id: int) -> bool:
    """Whether a text that ends with this token cannot end inside a word, whatever comes next:
    it ends with closing punctuation (``.``, ``?``, ``!``, ``,``, ``)``, ...), in a script without
    spaces, or is a tag or control piece. A piece ending in a letter may go on (``▁hers`` + ``elf``);
    so may a byte piece. Only the next token, or the end of the stream, decides those."""
    piece = tokenizer.piece(token_id)
    if token_id == tokenizer.blank_id or piece in CONTROL or tokenizer.is_language_tag(token_id):
        return True
    if BYTE_PIECE.match(piece):
        return False
    text = piece.replace(WORD_START, " ")
    if not text.strip() or text != text.rstrip() or piece == UNKNOWN:
        return True  # whitespace at its end: the next piece starts a word
    ch = text[-1]
    if ch not in _NOT_WORD_END and unicodedata.category(ch) in ("Po", "Pe", "Pf"):
        return True
    return unicodedata.name(ch, "").startswith(_NO_SPACE_SCRIPTS)


def starts_word(tokenizer: Tokenizer, token_id: int) -> bool:
    """Whether this token begins a new word (SentencePiece's ``▁``, an unknown piece or a language tag),
    so that the text before it ends a word."""
    piece = tokenizer.piece(token_id)
    return piece.startswith(WORD_START) or piece == UNKNOWN or bool(tokenizer.is_language_tag(token_id))


def language_tags(tokenizer: Tokenizer, token_ids: list[int]) -> list[str]:
    return [tag for tag in map(tokenizer.is_language_tag, token_ids) if tag]


class IncrementalText:
    """Text and completed words of a growing token list, from token ``start`` on.

    ``update`` returns the text so far, what was added since the last call, and the words that
    can no longer change (all but the last, open one; all of them when ``final``). The text only
    grows, and when ``final`` it equals ``TextRule.text`` of the tokens."""

    def __init__(self, tokenizer: Tokenizer, frame_s: float, start: int = 0):
        self.tokenizer, self.frame_s = tokenizer, frame_s
        self.rule = TextRule(tokenizer)
        self.start = start  # first token of this text
        self.done = start  # first token whose characters are not all in ``text`` yet
        self.tags_seen = start  # tokens already scanned for language tags
        self.text = ""
        self.tags: list[str] = []
        self.open = Chars("", [], [], [])  # characters of ``text`` after the last completed word

    def update(self, token_ids: list[int], frames: list[int], probs: list[float],
               final: bool = False) -> tuple[str, str, list[Word]]:
        self.tags += language_tags(self.tokenizer, token_ids[self.tags_seen:])
        self.tags_seen = len(token_ids)
        raw, tail_bytes = self.rule.raw(token_ids[self.done:], self.done)
        chars = self.rule.apply(raw, at_start=not self.text)
        stable = len(chars.text.rstrip())
        if not final and tail_bytes:  # the last byte run may still become another character
            run = raw.run[-1]
            stable = min(stable, next((i for i, r in enumerate(chars.run) if r >= run), stable))
        # ``done`` moves to the first token of what is held back; what it renders stays held back
        held = chars.run[stable] if stable < len(chars.text) and not final else len(token_ids)
        while stable and chars.first[stable - 1] >= held:
            stable -= 1
        delta = chars.text[:stable]
        self.text += delta
        self.done = held
        new = Chars(delta, chars.first[:stable], chars.last[:stable], chars.run[:stable])
        self.open = Chars(self.open.text + new.text, self.open.first + new.first, self.open.last + new.last,
                          self.open.run + new.run)
        return self.text, delta, self._completed_words(token_ids, frames, probs, final)

    def has_text(self, token_ids: list[int]) -> bool:
        """Whether the text, once final, is not empty (held-back characters count)."""
        if self.text:
            return True
        return bool(self.rule.apply(self.rule.raw(token_ids[self.done:], self.done)[0], at_start=True).text.strip())

    def _completed_words(self, token_ids: list[int], frames: list[int], probs: list[float],
                         final: bool) -> list[Word]:
        o = self.open
        spans = [m.span() for m in re.finditer(r"\S+", o.text)]
        if not final and spans and spans[-1][1] == len(o.text):
            spans.pop()  # the last word may go on with the next piece
        words = [self._word(o, a, b, token_ids, frames, probs) for a, b in spans]
        if spans:
            cut = spans[-1][1]
            self.open = Chars(o.text[cut:], o.first[cut:], o.last[cut:], o.run[cut:])
        return words

    def _word(self, o: Chars, a: int, b: int, token_ids: list[int], frames: list[int],
              probs: list[float]) -> Word:
        lo, hi = min(o.first[a:b]), max(o.last[a:b])
        tokens = [i for i in range(lo, hi + 1) if not self.tokenizer.is_language_tag(token_ids[i])]
        confidence = sum(probs[i] for i in tokens) / len(tokens)
        return Word(o.text[a:b], frames[lo] * self.frame_s, (frames[hi] + 1) * self.frame_s, confidence)


def render(tokenizer: Tokenizer, token_ids: list[int], frames: list[int], probs: list[float],
           frame_s: float) -> tuple[str, list[str], list[Word]]:
    """Text, language tags and words of a whole token list (offline: one call, all final)."""
    inc = IncrementalText(tokenizer, frame_s)
    text, _, words = inc.update(token_ids, frames, probs, final=True)
    return text, inc.tags, words
