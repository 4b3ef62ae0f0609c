"""``onepass serve``: the HTTP/WebSocket server (Deepgram and OpenAI protocols)."""

from __future__ import annotations

import argparse
import logging
import os

from ..errors import OnePassError
from .common import add_model_options, load
from .hotwords import add_hotword_options, hotwords_from_args


def step_config(args: argparse.Namespace):
    """The model step's settings from --device, --cuda-graphs and --beam."""
    from ..step import StepConfig

    cuda = str(args.device).startswith("cuda")
    graphs = cuda if args.cuda_graphs is None else args.cuda_graphs
    if graphs and not cuda:
        raise OnePassError("--cuda-graphs needs a CUDA --device")
    return StepConfig(cuda_graphs=graphs, beam=getattr(args, "beam", 1))


def _max_streams(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'auto', got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def add_parser(sub) -> None:
    p = sub.add_parser("serve", allow_abbrev=False, help="serve live and file transcription over HTTP",
                       description="Serve /v1/listen (Deepgram-style WebSocket), /v1/realtime (OpenAI Realtime), "
                                   "/v1/audio/transcriptions, /v1/models, /health, /ready, /metrics and a "
                                   "browser page at /. SIGTERM or Ctrl-C finishes open streams (their last "
                                   "results are sent) before exiting; a second Ctrl-C exits at once.")
    add_model_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help="accept this API key (repeatable; also $ONEPASS_API_KEYS, comma separated); "
                        "without any, no authentication")
    p.add_argument("--max-streams", type=_max_streams, default=16, metavar="N|auto",
                   help="streams served at once; more are refused with 503 and Retry-After. 'auto' measures "
                        "how many real-time streams this machine can serve at --chunk-ms at start "
                        "(a few seconds) (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=None, help="streams per batched step (default: max-streams)")
    p.add_argument("--chunk-ms", type=int, default=None,
                   help="chunk size of streams that do not choose one, and the one 'auto' is measured at "
                        "(default: the model's default)")
    p.add_argument("--endpoint-ms", type=int, default=800,
                   help="default silence (no new words) that ends an utterance, ms; 0 disables; clients "
                        "override it per stream (default: %(default)s)")
    p.add_argument("--word-hold-ms", type=int, default=1500,
                   help="when the last piece may not end its word, the endpoint waits for the next piece "
                        "(a final never ends inside a word) at most this much more silence, ms; -1: no "
                        "limit (default: %(default)s)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="close WebSockets silent this long, seconds (default: %(default)s)")
    p.add_argument("--max-message-kb", type=int, default=1024,
                   help="largest WebSocket message, KiB (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=int, default=100, help="largest REST upload, MiB (default: %(default)s)")
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="on shutdown, wait this long for open streams to finish, seconds (default: %(default)s)")
    p.add_argument("--record-dir", default=None,
                   help="save the audio each live stream sent to this directory (float WAV, one per stream)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="browser origin allowed to call the REST API, e.g. https://app.example.com "
                        "(repeat for more; '*' for any; default: same origin only)")
    p.add_argument("--model-name", default=None, help="model id to report (default: the model's directory name)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_hotword_options(p, server=True)
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                   help="replay steady-state steps as captured CUDA graphs (default: on with a CUDA --device)")
    add_ray_options(p)
    p.set_defaults(run=run)


def _positive(kind):
    def parse(value: str):
        try:
            n = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
        if n < 0 or (kind is int and n < 1):
            raise argparse.ArgumentTypeError("must be positive")
        return n
    return parse


def add_ray_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale-out on Ray Serve (pip install \"onepass[ray]\"; see docs/scaling.md)")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="serve through Ray Serve, one engine per replica: no ADDRESS starts a local Ray, "
                        "'auto' joins the cluster started by 'ray start' (or any address ray.init takes)")
    g.add_argument("--replicas", type=_positive(int), default=None, metavar="N",
                   help="with --ray: a fixed number of replicas (default: 1)")
    g.add_argument("--min-replicas", type=_positive(int), default=None, metavar="N",
                   help="with --ray: autoscale on the replicas' stream load, from N replicas ...")
    g.add_argument("--max-replicas", type=_positive(int), default=None, metavar="N", help="... up to N")
    g.add_argument("--num-cpus", type=_positive(float), default=1.0,
                   help="with --ray: CPUs each replica reserves (default: %(default)s)")
    g.add_argument("--num-gpus", type=_positive(float), default=0.0,
                   help="with --ray: GPUs each replica reserves; >0 runs the model on the replica's GPU "
                        "(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    try:
        from ..server import create_app
        from ..server.capacity import calibrate
        from ..server.serving import make_server
    except ImportError as exc:  # pragma: no cover
        raise OnePassError(f"the server needs fastapi and uvicorn ({exc}); pip install 'onepass'") from None
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(message)s")
    log = logging.getLogger("onepass.server")
    if args.ray is not None:
        from .serve_ray import run_on_ray

        return run_on_ray(args)
    _check_no_ray_options(args)
    asr = load(args)
    asr.configure_step(step_config(args))
    asr.config.right_context_for_chunk_ms(args.chunk_ms)  # a bad --chunk-ms fails before anything starts
    max_streams = args.max_streams
    if max_streams == "auto":
        log.info("measuring capacity at %s ms chunks ...", args.chunk_ms or "default")
        cal = calibrate(asr, args.chunk_ms)
        log.info("%s", cal.describe())
        max_streams = cal.capacity
    config = server_config(args, max_streams)
    asr.hotwords(config.stream_hotwords())  # the server-wide list fits the limits (tokenized)
    server = make_server(create_app(asr, config), args.host, args.port, ws_max_size=config.max_message_bytes + 1024,
                         log_level=args.log_level, drain_timeout_s=config.drain_timeout_s)
    log.info("serving %s on http://%s:%d (at most %d streams)", config.model_name, args.host, args.port, max_streams)
    server.run()
    return 0


def server_config(args: argparse.Namespace, max_streams: int):
    """The app's settings from the command line (``max_streams`` resolved from 'auto')."""
    from ..server import ServerConfig

    keys = list(args.api_key) + [k for k in os.environ.get("ONEPASS_API_KEYS", "").split(",") if k]
    settings = hotwords_from_args(args)  # the server-wide list: a bad file or boost stops here
    return ServerConfig(
        model_name=args.model_name or os.path.basename(str(args.model).rstrip("/")) or "onepass",
        api_keys=tuple(keys), max_streams=max_streams, max_batch=args.max_batch or max_streams,
        endpoint_blank_ms=args.endpoint_ms or None,
        word_hold_ms=None if args.word_hold_ms < 0 else args.word_hold_ms, idle_timeout_s=args.idle_timeout,
        max_message_bytes=args.max_message_kb * 1024, max_upload_bytes=args.max_upload_mb << 20,
        chunk_ms=args.chunk_ms, drain_timeout_s=args.drain_timeout, record_dir=args.record_dir,
        cors_origins=tuple(args.cors_origin), hotwords=tuple(settings.phrases),
        hotword_boost=args.hotword_boost)


def _check_no_ray_options(args: argparse.Namespace) -> None:
    defaults = {"replicas": None, "min_replicas": None, "max_replicas": None, "num_cpus": 1.0, "num_gpus": 0.0}
    given = ["--" + name.replace("_", "-") for name, default in defaults.items() if getattr(args, name) != default]
    if given:
        raise OnePassError(f"{', '.join(given)} only apply with --ray")
