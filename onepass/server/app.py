"""The FastAPI app: routes, health, metrics, and the engine runner's lifetime."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from starlette.exceptions import HTTPException

from ..engine import Engine, EngineConfig
from ..recognizer import Recognizer
from . import deepgram, realtime, rest
from .config import ServerConfig
from .gate import error_response
from .metrics import Metrics
from .protocol import Health
from .runner import EngineRunner

STATIC = Path(__file__).parent / "static"


@dataclass
class ServerState:
    recognizer: Recognizer
    config: ServerConfig
    runner: EngineRunner
    metrics: Metrics
    sessions: set = field(default_factory=set)  # live WebSocket sessions (drained on shutdown)


def create_app(recognizer: Recognizer, config: ServerConfig | None = None) -> FastAPI:
    """One engine per app; its thread runs while the app is being served."""
    config = config or ServerConfig()
    metrics = Metrics()
    engine = Engine(recognizer, EngineConfig(max_batch=config.max_batch, max_streams=config.max_streams,
                                             endpoint_blank_ms=config.endpoint_blank_ms,
                                             word_hold_ms=config.word_hold_ms))
    runner = EngineRunner(engine, metrics, capacity=config.max_streams, default_chunk_ms=config.chunk_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        runner.start()
        try:
            yield
        finally:
            runner.stop()

    app = FastAPI(title="onepass", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.onepass = ServerState(recognizer, config, runner, metrics)
    if config.cors_origins:  # browsers on other origins may call the REST API (WebSockets need no CORS)
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    # HTTP errors in OpenAI's shape ({"error": {...}}), not FastAPI's {"detail": ...}
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.include_router(rest.router)
    app.add_api_websocket_route("/v1/listen", deepgram.listen)
    app.add_api_websocket_route("/v1/realtime", realtime.realtime)

    @app.get("/health")
    async def health():
        return Health(status="ok", model=config.model_name, active_streams=runner.active,
                      capacity=runner.capacity).model_dump()

    @app.get("/ready")
    async def ready():
        ok = runner.alive and not runner.draining
        body = Health(status="ok" if ok else "draining" if runner.draining else "loading", model=config.model_name,
                      active_streams=runner.active, capacity=runner.capacity)
        return Response(body.model_dump_json(), status_code=200 if ok else 503, media_type="application/json")

    @app.get("/metrics")
    async def prometheus(request: Request):
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/")
    async def index():
        page = STATIC / "index.html"
        if not page.exists():
            return Response("onepass server: see /v1/listen, /v1/realtime, /v1/audio/transcriptions\n",
                            media_type="text/plain")
        return FileResponse(page)

    return app


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """A form or query field of the wrong type, or a required one missing: 400, naming the field."""
    first = exc.errors()[0] if exc.errors() else {}
    param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    what = "is missing" if first.get("type") == "missing" else f"is invalid: {first.get('msg', 'bad value')}"
    return error_response(400, f"{param or 'the request'} {what}", "invalid_request_error", "invalid_value", param)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Routing and parsing errors (404, 405, malformed multipart bodies) in the same shape."""
    kind = "server_error" if exc.status_code >= 500 else "invalid_request_error"
    return error_response(exc.status_code, str(exc.detail), kind, headers=getattr(exc, "headers", None))
