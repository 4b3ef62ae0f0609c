"""HTTP/WebSocket server over the multi-stream engine (``onepass serve``)."""

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
