"""API keys: ``Authorization: Bearer|Token <key>``, or ``?api_key=`` / ``?token=`` for browsers."""

from __future__ import annotations

import hmac
from typing import Mapping


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    for name in ("api_key", "token"):
        if query.get(name):
            return query[name]
    return None


def authorized(keys: tuple[str, ...], headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """True when no keys are configured or the presented key matches one (constant time)."""
    if not keys:
        return True
    key = presented_key(headers, query)
    if key is None:
        return False
    ok = False
    for k in keys:  # compare against every key so timing does not reveal which one matched
        ok |= hmac.compare_digest(key.encode(), k.encode())
    return ok
