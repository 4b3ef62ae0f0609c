"""Before a WebSocket upgrade: authenticate, validate, admit (or refuse with an HTTP status)."""

from __future__ import annotations

from fastapi import WebSocket
from fastapi.responses import JSONResponse

from .auth import authorized
from .protocol import ErrorBody, ErrorResponse
from .runner import Lease


def error_response(status: int, message: str, kind: str, code: str | None = None,
                   param: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=kind, code=code, param=param))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def unauthorized() -> JSONResponse:
    return error_response(401, "missing or invalid API key: send 'Authorization: Bearer <key>' "
                          "(or ?api_key=<key>)", "authentication_error", "invalid_api_key",
                          headers={"WWW-Authenticate": "Bearer"})


def overloaded(retry_after_s: int) -> JSONResponse:
    return error_response(503, "server is at capacity; retry later", "overloaded_error", "at_capacity",
                          headers={"Retry-After": str(retry_after_s)})


async def deny(ws: WebSocket, response: JSONResponse) -> None:
    """Refuse before the upgrade with a real HTTP response (falls back to close 1008/1013)."""
    try:
        await ws.send_denial_response(response)
    except RuntimeError:  # server without the websocket.http.response extension
        await ws.close(1013 if response.status_code == 503 else 1008)


async def admit(ws: WebSocket) -> Lease | None:
    """Auth and capacity check; returns a lease, or None after refusing the client."""
    state = ws.app.state.onepass
    if not authorized(state.config.api_keys, ws.headers, ws.query_params):
        await deny(ws, unauthorized())
        return None
    lease = state.runner.try_lease()
    if lease is None:
        await deny(ws, overloaded(state.config.retry_after_s))
    return lease
