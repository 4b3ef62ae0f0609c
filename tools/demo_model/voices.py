"""Random espeak-ng voice variants: many more synthetic speakers than espeak-ng ships.

A variant file (espeak-ng-data/voices/!v/NAME, text) scales the synthesiser's formants (frequency,
height and width of each of formants 0-8, in percent), sets the pitch range in Hz and adds voice
qualities (roughness, flutter, breathiness, echo, voicing and consonant strength). ``random_variant``
draws all of these per speaker, around male or female settings like espeak-ng's own m1-m7 / f1-f5, so
a corpus can have hundreds of speakers; ``data_dir_with`` writes them into a private copy of
espeak-ng's data directory, which libespeak-ng reads when ``ESPEAK_DATA_PATH`` points at its parent.
The held-out variants of make_corpus.py (m5, m7, f3, f5) are never written: random names (rvNNNN) only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np


def random_variant(seed: int) -> str:
    """The text of one seeded random variant file."""
    rng = np.random.default_rng(seed)
    female = rng.random() < 0.5
    scale = rng.uniform(102, 128) if female else rng.uniform(88, 106)  # overall vocal-tract length
    lines = ["language variant", f"name rv{seed}", f"gender {'female' if female else 'male'}", ""]
    lo = rng.uniform(135, 175) if female else rng.uniform(65, 100)
    hi = lo + (rng.uniform(40, 100) if female else rng.uniform(25, 60))
    lines.append(f"pitch {lo:.0f} {hi:.0f}")
    for k in range(9):
        freq = 100 + (scale - 100) * (0.5 if k == 0 else 1.0) + rng.uniform(-7, 7)
        height = rng.uniform(55, 130) if k else rng.uniform(80, 130)
        width = rng.uniform(70, 160)
        lines.append(f"formant {k} {freq:.0f} {height:.0f} {width:.0f}")
    lines.append(f"roughness {int(rng.integers(0, 6))}")
    lines.append(f"flutter {int(rng.integers(0, 21))}")
    lines.append(f"voicing {int(rng.integers(60, 161))}")
    if rng.random() < 0.3:
        lines.append(f"consonants {int(rng.integers(70, 151))} {int(rng.integers(70, 151))}")
    if rng.random() < 0.2:
        lines.append("breath " + " ".join(str(int(x)) for x in rng.integers(0, 7, size=8)))
    if rng.random() < 0.3:
        lines.append(f"echo {int(rng.integers(100, 161))} {int(rng.integers(5, 16))}")
    return "\n".join(lines) + "\n"


def system_data_dir() -> Path:
    """The espeak-ng-data directory of the installed libespeak-ng (Debian: /usr/lib/<arch>/espeak-ng-data)."""
    for cand in [*Path("/usr/lib").glob("*/espeak-ng-data"), Path("/usr/lib/espeak-ng-data"),
                 Path("/usr/share/espeak-ng-data"), Path("/usr/local/share/espeak-ng-data")]:
        if (cand / "phontab").exists():
            return cand
    raise RuntimeError("espeak-ng-data not found (apt-get install espeak-ng)")


MAX_VOICES = 349  # libespeak-ng lists at most N_VOICES_LIST - 1 voices (languages + variants); more are dropped


def data_dir_with(names: list[str], root: Path, languages: tuple[str, ...] = ("en-US", "es", "de")) -> Path:
    """A copy of espeak-ng's data under ``root``/espeak-ng-data with the random variants ``names``
    (rvSEED) added; returns ``root``, the value for ESPEAK_DATA_PATH. The copy keeps only the language
    files ``languages`` (espeak-ng-data/lang/*/NAME) and no MBROLA voices, so that the variants fit in
    libespeak-ng's voice list (``MAX_VOICES``: a voice past it silently falls back to the plain one)."""
    dst = root / "espeak-ng-data"
    if not dst.exists():
        tmp = root / "espeak-ng-data.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(system_data_dir(), tmp)
        for f in (tmp / "lang").rglob("*"):
            if f.is_file() and f.name not in languages:
                f.unlink()
        shutil.rmtree(tmp / "voices" / "mb", ignore_errors=True)
        tmp.rename(dst)
    for name in names:
        (dst / "voices" / "!v" / name).write_text(random_variant(int(name[2:])))
    n = sum(f.is_file() for f in (dst / "lang").rglob("*")) + sum(1 for _ in (dst / "voices" / "!v").iterdir())
    if n > MAX_VOICES:
        raise ValueError(f"{n} voices in {dst}: libespeak-ng lists at most {MAX_VOICES}; ask for fewer random variants")
    return root
