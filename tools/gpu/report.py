"""The check's JSON and log: one part per section, rewritten after every section (and inside long
ones), so a run killed at its deadline still leaves everything measured before it."""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Callable

SCHEMA = 1  # bump when a key changes meaning
SECTIONS = ("env", "identity", "graphs", "bf16_agreement", "step_times", "beam", "memory", "capacity")


class Report:
    """``check.json`` and ``check.log`` under the output folder."""

    def __init__(self, out: Path, profile: str, budget_s: float):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.start = time.monotonic()
        self.deadline = self.start + budget_s
        self.data = {"schema": SCHEMA, "profile": profile, "budget_s": budget_s,
                     "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "wall_s": 0.0,
                     "complete": False,
                     "sections": {name: {"status": "not run"} for name in SECTIONS}}
        self._log = open(out / "check.log", "a", buffering=1)

    def log(self, line: str) -> None:
        stamp = f"[{time.monotonic() - self.start:7.1f}s]"
        print(f"{stamp} {line}", flush=True)
        self._log.write(f"{stamp} {line}\n")

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def write(self) -> None:
        self.data["wall_s"] = round(time.monotonic() - self.start, 1)
        tmp = self.out / "check.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=1, default=_plain) + "\n")
        os.replace(tmp, self.out / "check.json")

    def section(self, name: str, fn: Callable[[dict], None], reserve_s: float) -> dict:
        """Run ``fn(part)``, which fills ``part`` (and may call ``self.write()`` as it goes).
        ``reserve_s``: time kept for the sections after this one; a section that would start with
        less than that left is skipped."""
        part: dict = {"status": "running"}
        self.data["sections"][name] = part
        if self.time_left() <= reserve_s:
            part["status"] = "skipped: the run's deadline"
            self.log(f"{name}: skipped (deadline)")
            self.write()
            return part
        self.log(f"== {name}")
        t0 = time.monotonic()
        try:
            fn(part)
            if part["status"] == "running":
                part["status"] = "ok"
        except Unavailable as exc:
            part["status"] = f"unavailable: {exc}"
        except Exception as exc:  # noqa: BLE001 - a broken section must not stop the others
            part["status"] = f"error: {type(exc).__name__}: {exc}"
            part["traceback"] = traceback.format_exc(limit=8)
            self.log(part["traceback"])
        part["wall_s"] = round(time.monotonic() - t0, 2)
        self.log(f"{name}: {part['status']} ({part['wall_s']} s)")
        self.write()
        return part

    def close(self) -> None:
        self.data["complete"] = True
        self.write()
        self._log.close()


class Unavailable(Exception):
    """A section cannot run with what this checkout or machine has (the message says what is missing)."""


def _plain(obj):
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
