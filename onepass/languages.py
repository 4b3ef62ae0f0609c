"""Language codes -> prompt slots, using the checkpoint's prompt dictionary."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import OnePassError
from .languages_table import DEFAULT_PROMPT_DICTIONARY
from .model.config import ModelConfig

AUTO = "auto"
LOCALE = re.compile(r"^[a-z]{2,3}-[A-Z]{2}$")


@dataclass(frozen=True)
class Language:
    code: str | None  # canonical locale (e.g. "en-US"); None for auto
    prompt: int | None  # prompt slot; None for models without a prompt
    auto: bool  # the model detects the language itself


_RANK = {key: i for i, key in enumerate(DEFAULT_PROMPT_DICTIONARY)}


def _rank(code: str) -> int:
    return _RANK.get(code, len(_RANK))


def canonical_locales(config: ModelConfig) -> dict[int, str]:
    """Prompt slot -> display code: the first xx-YY key in NVIDIA's dictionary order (saved
    checkpoints may sort their keys, which would make "hi-HI" win over "hi-IN")."""
    keys = sorted(config.prompt_dictionary, key=lambda k: (not LOCALE.match(k), _rank(k), k))
    out: dict[int, str] = {}
    for key in keys:
        if key != AUTO:
            out.setdefault(config.prompt_dictionary[key], key)
    return out


def supported_languages(config: ModelConfig) -> list[str]:
    if not config.has_prompt:
        return ["en"]
    codes = sorted(set(canonical_locales(config).values()))
    return codes + ([AUTO] if AUTO in config.prompt_dictionary else [])


def resolve_language(config: ModelConfig, language: str | None) -> Language:
    """Accept "en", "en-US", "en_us", "EN-us" or "auto"; unknown codes are an error."""
    if not config.has_prompt:
        if language is None or language.lower() in (AUTO, "en") or language.lower().startswith(("en-", "en_")):
            return Language("en", None, False)
        raise OnePassError(f"this model ({config.name}) transcribes English only; got language {language!r}")
    if language is None:
        language = config.default_language
    table = config.prompt_dictionary
    wanted = language.strip().replace("_", "-")
    if wanted.lower() == AUTO:
        if AUTO not in table:
            raise OnePassError("this model has no automatic language detection; pass a language code")
        return Language(None, table[AUTO], True)
    parts = wanted.split("-")
    candidates = [wanted, "-".join([parts[0].lower()] + [p.upper() for p in parts[1:]])]
    slot = next((table[c] for c in candidates if c in table), None)
    if slot is None:
        lower = {k.lower(): v for k, v in table.items()}
        slot = lower.get(wanted.lower())
    if slot is None and len(parts) == 1:  # bare "ja": the first ja-XX locale in NVIDIA's order
        prefix = parts[0].lower() + "-"
        slot = next((s for s, code in sorted(canonical_locales(config).items(),
                                             key=lambda kv: _rank(kv[1])) if code.lower().startswith(prefix)), None)
    if slot is None:
        raise OnePassError(
            f"unknown language {language!r}; supported: {', '.join(supported_languages(config))}")
    return Language(canonical_locales(config).get(slot, wanted), slot, False)
