"""``onepass stream FILE|- --url ws://...``: stream audio to a server at real-time pace, print captions."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.parse

import numpy as np

from ..audio import SAMPLE_RATE, load_for_model
from ..errors import OnePassError

PIECE_MS = 100  # audio per WebSocket message


def add_parser(sub) -> None:
    p = sub.add_parser("stream", allow_abbrev=False, help="stream a file or stdin to a server, print live captions",
                       description="Stream audio to `onepass serve` (/v1/listen) at real-time pace. FILE is an "
                                   "audio file, or - for raw 16-bit little-endian mono PCM on stdin, e.g. "
                                   "`ffmpeg -i in.mp4 -f s16le -ac 1 -ar 16000 - | onepass stream -`.")
    p.add_argument("file", metavar="FILE|-")
    p.add_argument("--url", default="ws://127.0.0.1:8000", help="server base URL (default: %(default)s)")
    p.add_argument("--api-key", default=None, help="API key (sent as Authorization: Token KEY)")
    p.add_argument("--language", "-l", default=None, help="language code or 'auto'")
    p.add_argument("--chunk-ms", type=int, default=None, help="chunk size in ms")
    p.add_argument("--rate", type=int, default=SAMPLE_RATE, help="stdin sample rate, Hz (default: %(default)s)")
    p.add_argument("--fast", action="store_true", help="send as fast as possible instead of real-time pace")
    p.add_argument("--hotwords", default=None, metavar="'A,B'",
                   help="phrases for the server to boost, separated by commas ('phrase:2.5': its own boost), "
                        "sent as Deepgram keyterm= / keywords=")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_stream(args))
    except OSError as exc:
        raise OnePassError(f"cannot reach {args.url}: {exc}") from None


def _url(args) -> str:
    base = args.url.rstrip("/")
    if not base.endswith("/v1/listen"):
        base += "/v1/listen"
    q = {"encoding": "linear16", "sample_rate": args.rate if args.file == "-" else SAMPLE_RATE,
         "interim_results": "true"}
    if args.language:
        q["language"] = args.language
    if args.chunk_ms:
        q["chunk_ms"] = args.chunk_ms
    phrases = [p.strip() for p in (args.hotwords or "").split(",") if p.strip()]
    pairs = list(q.items()) + [("keywords" if ":" in p else "keyterm", p) for p in phrases]
    return f"{base}?{urllib.parse.urlencode(pairs)}"


def _pieces(args):
    """Yield (pcm16 bytes, seconds) pieces of PIECE_MS."""
    if args.file == "-":
        size = args.rate * PIECE_MS // 1000 * 2
        stdin = sys.stdin.buffer
        while True:
            data = stdin.read(size)
            if not data:
                return
            data = data[:len(data) // 2 * 2]
            yield data, len(data) / 2 / args.rate
    else:
        samples, _ = load_for_model(args.file)
        pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes()  # exact for 16-bit files
        size = SAMPLE_RATE * PIECE_MS // 1000 * 2
        for pos in range(0, len(pcm), size):
            yield pcm[pos:pos + size], len(pcm[pos:pos + size]) / 2 / SAMPLE_RATE


async def _stream(args) -> int:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    headers = {"Authorization": f"Token {args.api_key}"} if args.api_key else None
    try:
        ws = await connect(_url(args), additional_headers=headers, max_size=None)
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace") if exc.response.body else ""
        raise OnePassError(f"server refused the stream (HTTP {exc.response.status_code}): {body}") from None
    loop = asyncio.get_running_loop()
    gen = _pieces(args)
    transcript = None
    async with ws:
        async def send():
            start, sent_s = time.monotonic(), 0.0
            while True:
                item = await loop.run_in_executor(None, next, gen, None)
                if item is None:
                    break
                await ws.send(item[0])
                sent_s += item[1]
                if not args.fast:
                    await asyncio.sleep(max(0.0, start + sent_s - time.monotonic()))
            await ws.send(json.dumps({"type": "CloseStream"}))

        sender = asyncio.create_task(send())
        line = ""
        async for raw in ws:
            m = json.loads(raw)
            if m["type"] == "Results":
                text = m["channel"]["alternatives"][0]["transcript"]
                lag = m.get("onepass", {}).get("lag_s", 0.0)
                if m["is_final"] and text:
                    line = f"{line} {text}".strip()
                shown = line if m["is_final"] else f"{line} {text}".strip()
                if sys.stderr.isatty():
                    sys.stderr.write(f"\r\033[K{shown[-100:]}  [lag {lag:.2f}s]")
                if m["speech_final"]:
                    if sys.stderr.isatty():
                        sys.stderr.write("\r\033[K")
                    print(line, flush=True)
                    line = ""
            elif m["type"] == "Error":
                print(f"onepass: server: {m.get('description')}", file=sys.stderr)
            elif m["type"] == "Metadata":
                transcript = (m.get("onepass") or {}).get("transcript")
        await sender
    if line:
        print(line, flush=True)
    return 0 if transcript is not None else 1
