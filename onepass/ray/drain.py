"""Drain before Serve stops a replica.

On downscale, redeploy or `serve.delete`, Serve waits for the replica's ongoing requests and
then kills it after ``graceful_shutdown_timeout_s``; a WebSocket is one long request, so it is
cut without a close frame and the app is never told. Serve has no public hook that runs when
the stop begins, so each replica process wraps ``Replica.perform_graceful_shutdown`` (the
method the controller calls first) to start the app's own drain: new streams are refused with
503 + Retry-After, open streams decode all audio received, send their last results and close
with 1001, after which Serve's wait for ongoing requests ends on its own.
"""

from __future__ import annotations

import functools
import logging
import weakref
from typing import Callable

log = logging.getLogger("ray.serve")  # Serve routes it to the replica's log and the console
_DRAINERS: "weakref.WeakSet" = weakref.WeakSet()  # objects with a begin_drain() in this process
_WRAPPED = "__onepass_drain__"


def on_stop(owner) -> bool:
    """Call ``owner.begin_drain()`` when Serve starts stopping this replica. Returns False (and
    logs a warning) if this Ray version has no method to wrap: streams are then cut on stop."""
    _DRAINERS.add(owner)
    return install()


def install() -> bool:
    try:
        from ray.serve._private.replica import Replica
    except ImportError:
        Replica = None
    original = getattr(Replica, "perform_graceful_shutdown", None)
    if original is None:
        log.warning("this Ray version has no Replica.perform_graceful_shutdown: open streams will not be "
                    "drained when a replica stops")
        return False
    if getattr(original, _WRAPPED, False):
        return True
    Replica.perform_graceful_shutdown = _wrap(original)
    return True


def _wrap(original: Callable) -> Callable:
    @functools.wraps(original)
    async def perform_graceful_shutdown(self, *args, **kwargs):
        for owner in list(_DRAINERS):
            try:
                owner.begin_drain()
            except Exception:  # noqa: BLE001 - never block Serve's own shutdown
                log.exception("could not start draining")
        return await original(self, *args, **kwargs)

    setattr(perform_graceful_shutdown, _WRAPPED, True)
    return perform_graceful_shutdown
