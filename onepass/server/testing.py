"""Run an app on a real uvicorn on loopback, in a thread (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from .serving import make_server


@contextlib.contextmanager
def serve_in_thread(app, ws_max_size: int = 16 << 20):
    """Yields ``http://127.0.0.1:PORT``; shuts the server down gracefully (and the engine) on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(app, ws_max_size=ws_max_size, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
