"""``--hotwords``, ``--hotwords-file``, ``--hotword-boost``: phrase boosting options of the commands."""

from __future__ import annotations

import argparse

from ..decoding.phrases import (BEAM_BOOST, DEFAULT_BOOST, DEPTH_SCALING, HotwordSettings, Phrase,
                                hotword_settings, parse_phrase, read_hotwords_file)


def add_hotword_options(p: argparse.ArgumentParser, server: bool = False) -> None:
    who = "every stream (before a request's own keyterm/keywords/prompt)" if server else "decoding"
    if not server:
        p.add_argument("--hotwords", default=None, metavar="'A,B'",
                       help="phrases to boost in decoding (names, product words; a phrase may span words), "
                            "separated by commas; 'phrase:2.5' gives one its own boost")
    p.add_argument("--hotwords-file", default=None, metavar="FILE",
                   help=f"phrases to boost in {who}: one per line, optionally 'phrase:boost'")
    p.add_argument("--hotword-boost", type=float, default=None, metavar="X",
                   help=f"bonus of a phrase's first piece, in logits (later pieces get {DEPTH_SCALING:g} times it; "
                        f"default: {DEFAULT_BOOST:g}, with --beam above 1: {BEAM_BOOST:g})")


def phrases_from_args(args: argparse.Namespace) -> list[Phrase]:
    """The phrases of ``--hotwords-file`` then ``--hotwords`` (OnePassError on a bad file or boost)."""
    phrases = read_hotwords_file(args.hotwords_file) if args.hotwords_file else []
    for part in (getattr(args, "hotwords", None) or "").split(","):
        if part.strip():
            phrases.append(parse_phrase(part))
    return phrases


def hotwords_from_args(args: argparse.Namespace) -> HotwordSettings:
    return hotword_settings(phrases_from_args(args), args.hotword_boost)
