"""``onepass serve``: the HTTP/WebSocket server (Deepgram and OpenAI protocols)."""

from __future__ import annotations

import argparse
import os

from ..errors import OnePassError
from .common import add_model_options, load


def add_parser(sub) -> None:
    p = sub.add_parser("serve", allow_abbrev=False, help="serve live and file transcription over HTTP",
                       description="Serve /v1/listen (Deepgram-style WebSocket), /v1/realtime (OpenAI Realtime), "
                                   "/v1/audio/transcriptions, /v1/models, /health, /ready, /metrics and a "
                                   "browser page at /.")
    add_model_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help="accept this API key (repeatable; also $ONEPASS_API_KEYS, comma separated); "
                        "without any, no authentication")
    p.add_argument("--max-streams", type=int, default=16,
                   help="streams served at once; more are refused with 503 (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=None, help="streams per batched step (default: max-streams)")
    p.add_argument("--endpoint-ms", type=int, default=800,
                   help="silence that ends an utterance, ms; 0 disables (default: %(default)s)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="close WebSockets silent this long, seconds (default: %(default)s)")
    p.add_argument("--max-message-kb", type=int, default=1024,
                   help="largest WebSocket message, KiB (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=int, default=100, help="largest REST upload, MiB (default: %(default)s)")
    p.add_argument("--model-name", default=None, help="model id to report (default: the model's directory name)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..server import ServerConfig, create_app
    except ImportError as exc:  # pragma: no cover
        raise OnePassError(f"the server needs fastapi and uvicorn ({exc}); pip install 'onepass'") from None
    if args.max_streams < 1:
        raise OnePassError("--max-streams must be at least 1")
    keys = list(args.api_key) + [k for k in os.environ.get("ONEPASS_API_KEYS", "").split(",") if k]
    asr = load(args)
    config = ServerConfig(
        model_name=args.model_name or os.path.basename(str(args.model).rstrip("/")) or "onepass",
        api_keys=tuple(keys), max_streams=args.max_streams, max_batch=args.max_batch or args.max_streams,
        endpoint_blank_ms=args.endpoint_ms or None, idle_timeout_s=args.idle_timeout,
        max_message_bytes=args.max_message_kb * 1024, max_upload_bytes=args.max_upload_mb << 20)
    app = create_app(asr, config)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                ws_max_size=config.max_message_bytes + 1024, timeout_graceful_shutdown=10)
    return 0
