"""The small demo model shipped inside the package (``--model demo``)."""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"


def demo_path() -> Path | None:
    return DEMO_DIR if (DEMO_DIR / "config.json").exists() else None
