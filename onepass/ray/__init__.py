"""Scale-out on Ray: live streams over Ray Serve replicas, batch transcription with Ray Data.

Ray is an optional extra (``pip install "onepass[ray]"``); everything here imports it lazily
through ``require_ray`` so ``onepass`` itself never needs it.
"""

from __future__ import annotations

from ..errors import OnePassError

INSTALL_HINT = 'pip install "onepass[ray]"'


def require_ray(*parts: str):
    """Import ``ray`` (and ``ray.serve``/``ray.data`` for ``parts``), or fail with one line
    saying how to install it."""
    try:
        import importlib

        ray = importlib.import_module("ray")
        for part in parts:
            importlib.import_module(f"ray.{part}")
    except ImportError as exc:
        what = f"ray[{','.join(parts)}]" if parts else "ray"
        raise OnePassError(f"--ray needs {what}, which is not installed ({exc.name or exc}); "
                           f"install it with: {INSTALL_HINT}") from None
    return ray
