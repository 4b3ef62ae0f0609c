"""``onepass bench``: streaming RTFx, real-time capacity, offline RTFx and memory, optionally
next to transformers' implementation on the same weights."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ..errors import OnePassError


def add_parser(sub) -> None:
    p = sub.add_parser("bench", allow_abbrev=False, help="measure speed, capacity and memory",
                       description="Benchmark the engine on a real-size random-init model (no download) or a "
                                   "checkpoint; prints a table, or one JSON object with --json.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--random-init", choices=["nemotron-3.5", "nemotron-en", "tiny"], default=None,
                     help="random weights at this architecture (default: nemotron-3.5 unless --model)")
    src.add_argument("--model", "-m", default=None, help="model directory (HF layout), .nemo file or hub id")
    p.add_argument("--chunk-ms", default=None,
                   help="comma-separated chunk sizes (default: 80,160,560; --quick: 160,560)")
    p.add_argument("--capacity-chunk-ms", default=None,
                   help="chunk sizes for the capacity search (default: same as --chunk-ms)")
    p.add_argument("--compare", choices=["transformers", "sherpa-onnx"], default=None,
                   help="also measure transformers' implementation, or sherpa-onnx on the exported files, "
                        "on the same weights")
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                   help="where onepass runs the encoder (default: %(default)s)")
    p.add_argument("--quantize", choices=["none", "int8", "int4"], default="none",
                   help="ONNX encoder weights for --backend onnxruntime / --compare sherpa-onnx")
    p.add_argument("--onnx-dir", default=None, help="where to export the ONNX files (default: a temp dir)")
    p.add_argument("--sherpa-streams", default="1,4,12",
                   help="stream counts of the sherpa-onnx throughput comparison (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--quick", action="store_true", help="short audio, small searches (about 3 minutes at real size)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seconds", type=float, default=None,
                   help="audio per single-stream run and per capacity trial (default 10; offline file: 3x)")
    p.add_argument("--max-streams", type=int, default=None, help="capacity search limit (default 48)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="wall-time budget; capacity searches stop when it runs out (default 780)")
    p.add_argument("--language", default="en-US", help="language of every stream (default: %(default)s)")
    p.add_argument("--profile", action="store_true",
                   help="also profile one engine step per chunk size (1 stream, and the capacity batch)")
    p.add_argument("--no-prepack", dest="prepack", action="store_false",
                   help="run onepass on the dense weights (default: oneDNN-prepacked, as load_model does on "
                        "the CPU: faster few-row GEMMs, a second copy of the weights)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu",
                   help="torch device onepass runs on (default: %(default)s); other than cpu: onepass alone, "
                        "no --compare, --backend torch")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="onepass's weights and activations (default: %(default)s)")
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                   help="replay steady-state steps as captured CUDA graphs (default: on with a CUDA --device)")
    p.add_argument("--beam", type=int, default=1, metavar="K",
                   help="onepass decodes with beam search of K hypotheses per stream (default: 1, greedy)")
    p.set_defaults(run=run)


def _ints(text: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    if text is None:
        return default
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise OnePassError(f"--chunk-ms takes comma-separated integers such as 80,160,560, not {text!r}") from None


def config_from_args(args: argparse.Namespace):
    from ..bench import BenchConfig

    quick = args.quick
    seconds = args.seconds if args.seconds is not None else (4.0 if quick else 10.0)
    if seconds <= 0:
        raise OnePassError("--seconds must be positive")
    chunks = _ints(args.chunk_ms, (160, 560) if quick else (80, 160, 560))
    return BenchConfig(
        chunk_ms=chunks, stream_s=seconds, offline_s=3 * seconds, trial_s=seconds, min_trial_chunks=8 if quick else 32,
        max_streams=args.max_streams or (8 if quick else 48),
        capacity_chunk_ms=_ints(args.capacity_chunk_ms, chunks) if args.capacity_chunk_ms else None,
        compare_transformers=args.compare == "transformers", language=args.language,
        memory_streams=4 if quick else 16, cycles=100 if quick else 1000, cycle_decode_every=25 if quick else 50,
        budget_s=args.budget_s or (240.0 if quick else 780.0), prepack=args.prepack, seed=args.seed)


def _place(pair, args: argparse.Namespace, config, log):
    """Move onepass to --device/--dtype and set the step's CUDA graphs; returns the bench config."""
    import dataclasses

    from ..bench.factory import place
    from .serve import step_config

    if args.device != "cpu" or args.dtype != "float32":
        if args.compare or args.backend != "torch":
            raise OnePassError("--device/--dtype other than cpu/float32 measure onepass's torch backend alone "
                               "(no --compare, --backend torch)")
        place(pair.recognizer, args.device, args.dtype)
        config = dataclasses.replace(config, prepack=False)  # oneDNN packing is for float32 on the CPU
        log(f"onepass on {args.device} in {args.dtype}")
    pair.recognizer.configure_step(step_config(args))
    return config


def run(args: argparse.Namespace) -> int:
    if "torch" not in sys.modules:
        # On a shared machine, OpenMP threads that spin while waiting turn every small op into a
        # scheduler quantum (measured here: LayerNorm 14 us -> 5 ms with 2 threads next to a busy
        # process). Passive waiting costs little when the machine is idle. Set before torch loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from ..bench import checkpoint_pair, format_profile, profile_step, random_pair, run_bench, table
    from ..bench.audio import speech_like

    started = time.monotonic()
    if args.threads is not None:
        if args.threads < 1:
            raise OnePassError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True))
    compare = config.compare_transformers
    if args.model:
        log(f"loading {args.model}")
        pair = checkpoint_pair(args.model, with_hf=compare)
    else:
        preset = args.random_init or "nemotron-3.5"
        log(f"building random-init {preset}" + (" (onepass + transformers, shared weights)" if compare else ""))
        pair = random_pair(preset, with_hf=compare, seed=args.seed, language=config.language)
    log(f"model ready after {time.monotonic() - started:.0f} s")
    config = _place(pair, args, config, log)
    from ..bench import onnx_runs

    sherpa = args.compare == "sherpa-onnx"
    onnx_chunk = max(config.chunk_ms) if sherpa else 560
    onnx_info, onnx_dir = onnx_runs.prepare(pair, args.backend, args.quantize, args.onnx_dir, sherpa,
                                            onnx_chunk, args.threads, config.language, args.seed, log)
    result = run_bench(pair, config, started, log)
    if onnx_info:
        result["onnx"] = onnx_info
    if sherpa:
        result["sherpa_onnx"] = onnx_runs.compare_sherpa(
            pair.recognizer, onnx_dir, list(_ints(args.sherpa_streams, (1, 4, 12))), config.trial_s,
            config.language, args.threads or torch.get_num_threads(), args.seed, log)
    if args.profile:
        audio = speech_like(8.0, args.seed + 5)
        result["profiles"] = []
        for c in sorted({s["chunk_ms"] for s in result["streams"]}):
            cap = next((x["streams"] for x in result["capacity"] if x["impl"] == "onepass" and x["chunk_ms"] == c), 0)
            for batch in sorted({1, max(1, cap)}):
                result["profiles"].append(profile_step(pair.recognizer, audio, c, batch, config.language))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(table(result))
        if onnx_info:
            print()
            print(onnx_runs.format_table(result))
        for p in result.get("profiles", []):
            print()
            print(format_profile(p))
    return 0
