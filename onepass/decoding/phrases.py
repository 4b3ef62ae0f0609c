"""Boosting phrases (hotwords, keyterms): text -> piece ids -> a prefix tree with failure links.

A phrase is normalised to what the model writes (punctuation at word edges dropped, spaces
collapsed; a case-less vocabulary gets lower case, a cased one gets the phrase as written plus
its sentence-initial form), split into the tokenizer's pieces, and put into a prefix tree over
pieces. ``compile_phrases`` adds Aho-Corasick failure links and turns the tree into per-node
arc lists with the score bookkeeping the decoder needs (``boosting.BoostPool`` stores them):

- a node's potential ``P`` is the bonus collected on the way to it (first piece of a phrase:
  ``boost``; each later one ``DEPTH_SCALING * boost``: NeMo's boosting tree has 2, which on the demo
  model pulls near-misses that share a first piece into a listed word; 0.5 was measured better);
- a label that extends the match (an arc) earns its arc's gain; any other label leaves the
  match: the path's credit is taken back (``back = secured - P``, never positive), except what
  a completed phrase inside the match has secured, and the label may start a new match there.

So a failed prefix ends with no net bonus, and a finished phrase keeps its bonus.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import OnePassError
from ..tokenizer import Tokenizer

DEFAULT_BOOST = 2.25  # bonus (logit units) of a phrase's first piece; later pieces get DEPTH_SCALING times it
BEAM_BOOST = 1.0  # the default under beam search, where a boosted label must also win on the frames after it
# (2.25 there lets listed words in where they were not said; measured in docs/hotwords.md)
DEPTH_SCALING = 0.5  # later pieces weigh less: the greedy path, once in a match, leaves it only by paying
# its credit back, so large later bonuses force a listed word over a near-miss (docs/hotwords.md)
MAX_BOOST = 20.0  # largest boost accepted (larger ones only force the phrase over what was said)
MAX_PHRASES = 512  # phrases per stream
MAX_PHRASE_CHARS = 100  # characters per phrase
MAX_PHRASE_PIECES = 32  # pieces per phrase (after tokenization)
MAX_NODES = 8192  # prefix-tree nodes per stream (every variant of every phrase)


@dataclass(frozen=True)
class Phrase:
    """One phrase to boost."""

    text: str
    boost: float | None = None  # None: the stream's default boost


@dataclass(frozen=True)
class HotwordSettings:
    """What a stream is given: its phrases and the default boost of those without their own."""

    phrases: tuple[Phrase, ...] = ()
    boost: float | None = None  # default bonus, logit units (None: the decoder's, ``default_boost``)
    depth_scaling: float = DEPTH_SCALING  # a later piece's bonus, times its phrase's boost (Python API only)

    def __bool__(self) -> bool:
        return bool(self.phrases)


@dataclass
class CompiledPhrases:
    """A stream's prefix tree as arc lists (node 0 is the root); see the module docstring."""

    back: list[float]  # per node: the gain of a label that leaves the match (<= 0; 0 at the root)
    arcs: list[list[tuple[int, int, float]]]  # per node: (piece id, next node, gain); the root's arcs
    # start a match from anywhere (gain = the next node's potential, added to the current node's back)
    phrases: list[list[int]] = field(default_factory=list)  # the piece ids of every variant (tests, docs)

    @property
    def nodes(self) -> int:
        return len(self.back)

    def width(self) -> int:
        """Most arcs of a node other than the root."""
        return max((len(a) for a in self.arcs[1:]), default=0)


def check_boost(value: float, what: str = "hotword boost") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise OnePassError(f"{what} must be a number, got {value!r}") from None
    if not 0.0 < v <= MAX_BOOST:  # also rejects NaN
        raise OnePassError(f"{what} must be above 0 and at most {MAX_BOOST:g}, got {value!r}")
    return v


def hotword_settings(phrases, boost: float | None = None) -> HotwordSettings:
    """Phrases as strings or ``Phrase`` (or a ``HotwordSettings``, returned as is when no boost is
    given) -> checked settings. OnePassError on a limit or a bad boost."""
    if isinstance(phrases, HotwordSettings):
        return phrases if boost is None else replace(phrases, boost=check_boost(boost))
    if isinstance(phrases, str):
        phrases = [phrases]
    items = []
    for p in phrases or ():
        p = p if isinstance(p, Phrase) else Phrase(str(p))
        text = " ".join(p.text.split())
        if not text:
            continue
        if len(text) > MAX_PHRASE_CHARS:
            raise OnePassError(f"hotword {text[:30]!r}... is longer than {MAX_PHRASE_CHARS} characters")
        items.append(Phrase(text, None if p.boost is None else check_boost(p.boost, f"boost of {text!r}")))
    if len(items) > MAX_PHRASES:
        raise OnePassError(f"{len(items)} hotwords; at most {MAX_PHRASES} per stream")
    return HotwordSettings(tuple(items), None if boost is None else check_boost(boost))


def default_boost(beam: int) -> float:
    """The bonus of phrases without one, for greedy decoding (beam 1) or beam search."""
    return DEFAULT_BOOST if beam <= 1 else BEAM_BOOST


_BOOST_SUFFIX = re.compile(r"^(.*?)\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*$", re.DOTALL)


def parse_phrase(text: str) -> Phrase:
    """``"phrase"`` or ``"phrase:boost"`` (Deepgram's ``keywords``, a sherpa-onnx hotwords line)."""
    m = _BOOST_SUFFIX.match(text)
    if m and m.group(1).strip():
        return Phrase(m.group(1).strip(), check_boost(m.group(2), f"boost of {m.group(1).strip()!r}"))
    return Phrase(text.strip())


def read_hotwords_file(path) -> list[Phrase]:
    """One phrase per line, optionally ``phrase:boost``; blank lines and ``#`` comments skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OnePassError(f"cannot read hotwords file {path}: {exc}") from None
    return [parse_phrase(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


_SEPARATORS = re.compile(r"[,;\n]|[.!?](?=\s|$)")


def split_phrases(text: str) -> list[str]:
    """A free-text list (an OpenAI ``prompt``): phrases separated by commas, semicolons, new lines
    or sentence ends, so a prose prompt becomes its sentences rather than one phrase past the limit."""
    out = []
    for part in _SEPARATORS.split(text):
        part = " ".join(part.split())
        if part:
            out.append(part)
    return out


def _strip_word(word: str) -> str:
    """Punctuation at a word's edges goes (the model writes it as pieces of its own); inside
    a word (don't, AT&T) it stays."""
    is_p = lambda ch: unicodedata.category(ch)[0] in "PS"  # noqa: E731
    start, end = 0, len(word)
    while start < end and is_p(word[start]):
        start += 1
    while end > start and is_p(word[end - 1]):
        end -= 1
    return word[start:end]


def variants(text: str, cased: bool) -> list[str]:
    """The spellings of a phrase the model may write (see the module docstring)."""
    text = " ".join(w for w in (_strip_word(w) for w in text.split()) if w)
    if not text:
        return []
    if not cased:
        return [text.lower()]
    first = text[0].upper() + text[1:]
    return [text] if first == text else [text, first]


def _is_cased(tokenizer: Tokenizer) -> bool:
    return any(ch.isupper() for piece in tokenizer.pieces[:4096] if not piece.startswith("<") for ch in piece)


def phrase_pieces(tokenizer: Tokenizer, settings: HotwordSettings,
                  boost: float = DEFAULT_BOOST) -> list[tuple[list[int], float]]:
    """(piece ids, boost) of every variant of every phrase (``boost``: for those without one, where the
    settings have no default); OnePassError on a phrase too long."""
    boost = boost if settings.boost is None else settings.boost
    cased = _is_cased(tokenizer)
    out, seen = [], set()
    for p in settings.phrases:
        for text in variants(p.text, cased):
            ids = tokenizer.encode(text)
            if len(ids) > MAX_PHRASE_PIECES:
                raise OnePassError(f"hotword {p.text!r} is {len(ids)} pieces; at most {MAX_PHRASE_PIECES}")
            if ids and tuple(ids) not in seen:
                seen.add(tuple(ids))
                out.append((ids, boost if p.boost is None else p.boost))
    return out


def compile_phrases(tokenizer: Tokenizer, settings: HotwordSettings, beam: int = 1) -> CompiledPhrases:
    """The tree of ``settings`` for a stream decoded with ``beam`` hypotheses (the default boost's)."""
    return build_tree(phrase_pieces(tokenizer, settings, default_boost(beam)), settings.depth_scaling)


def build_tree(phrases: list[tuple[list[int], float]], depth_scaling: float = DEPTH_SCALING) -> CompiledPhrases:
    """The prefix tree of (piece ids, boost) pairs with failure links, as ``CompiledPhrases``; a
    phrase's first piece scores its boost, each later one ``depth_scaling`` times it."""
    if not 0.0 <= depth_scaling <= 4.0:  # also rejects NaN
        raise OnePassError(f"hotword depth scaling must be in [0, 4], got {depth_scaling!r}")
    children: list[dict[int, int]] = [{}]
    score, end = [0.0], [False]  # score: the bonus of the piece that enters the node
    for ids, boost in phrases:
        node = 0
        for i, tok in enumerate(ids):
            gain = boost * (1.0 if i == 0 else depth_scaling)
            nxt = children[node].get(tok)
            if nxt is None:
                nxt = len(children)
                if nxt >= MAX_NODES:
                    raise OnePassError(f"the hotwords need more than {MAX_NODES} tree nodes; "
                                       "give fewer or shorter ones")
                children[node][tok] = nxt
                children.append({})
                score.append(gain)
                end.append(False)
            else:  # a shared prefix keeps the larger score
                score[nxt] = max(score[nxt], gain)
            node = nxt
        end[node] = True
    n = len(children)
    fail, order, potential = [0] * n, [], [0.0] * n
    for child in children[0].values():
        potential[child] = score[child]
    queue = deque(children[0].values())
    while queue:  # breadth first: a node's failure link is shallower, hence done before it
        node = queue.popleft()
        order.append(node)
        for tok, child in children[node].items():
            potential[child] = potential[node] + score[child]
            f = fail[node]
            while f and tok not in children[f]:
                f = fail[f]
            fail[child] = children[f].get(tok, 0) if node else 0
            queue.append(child)
    # secured: the largest potential of a phrase completed inside the match (at a prefix of the
    # path, or as a suffix of one: on a failure chain)
    done_here = [0.0] * n  # best phrase ending exactly at this node (itself or a suffix of it)
    secured = [0.0] * n
    parent = [0] * n
    for node in range(n):
        for child in children[node].values():
            parent[child] = node
    for node in order:
        done_here[node] = max(potential[node] if end[node] else 0.0, done_here[fail[node]])
        secured[node] = max(done_here[node], secured[parent[node]])
    back = [0.0] + [min(0.0, secured[v] - potential[v]) for v in range(1, n)]
    arcs: list[list[tuple[int, int, float]]] = [[(tok, child, potential[child]) for tok, child in children[0].items()]]
    for node in range(1, n):
        out: dict[int, tuple[int, int, float]] = {}
        f = node
        while f:  # the goto of the automaton: the node's own children, then along the failure chain
            for tok, child in children[f].items():
                if tok not in out:
                    gain = (potential[child] - potential[node] if f == node
                            else potential[child] + back[node])
                    out[tok] = (tok, child, gain)
            f = fail[f]
        arcs.append(sorted(out.values()))
    return CompiledPhrases(back, arcs, [list(ids) for ids, _ in phrases])
