"""``onepass transcribe --manifest``: a NeMo-style manifest -> JSON Lines, here or on Ray Data."""

from __future__ import annotations

import argparse
import sys

from ..errors import OnePassError
from .common import load
from .hotwords import hotwords_from_args

MANIFEST_ONLY = {"output": None, "ray": None, "workers": None, "num_cpus": 1.0, "num_gpus": 0.0}


def add_manifest_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("batch jobs (see docs/scaling.md)")
    g.add_argument("--manifest", default=None, metavar="M.jsonl",
                   help="transcribe the files of a NeMo-style manifest (JSON lines with \"audio_filepath\" and "
                        "optional \"lang\") into --output, one line per input in manifest order; a rerun skips "
                        "the lines already transcribed")
    g.add_argument("--output", default=None, metavar="OUT.jsonl",
                   help="with --manifest: the manifest's fields plus those of --format json (or \"error\")")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="with --manifest: run on a Ray Data actor pool (pip install \"onepass[ray]\"); no "
                        "ADDRESS starts a local Ray, 'auto' joins the running cluster")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="with --ray: actors, each with its own model (default: 1)")
    g.add_argument("--num-cpus", type=float, default=1.0, help="with --ray: CPUs per actor (default: %(default)s)")
    g.add_argument("--num-gpus", type=float, default=0.0,
                   help="with --ray: GPUs per actor; >0 runs the model on the actor's GPU (default: %(default)s)")


def check_no_manifest_options(args: argparse.Namespace) -> None:
    given = ["--" + k.replace("_", "-") for k, default in MANIFEST_ONLY.items() if getattr(args, k) != default]
    if given:
        raise OnePassError(f"{', '.join(given)} only apply with --manifest")


def run_manifest(args: argparse.Namespace) -> int:
    from ..manifest import run_job, run_local

    if args.files:
        raise OnePassError("give either audio FILEs or --manifest, not both")
    if not args.output:
        raise OnePassError("--manifest needs --output OUT.jsonl")
    if args.mode != "offline" or args.live or args.realtime or args.output_dir or args.format != "txt":
        raise OnePassError("--manifest writes JSON lines of offline transcripts; drop --mode, --live, --realtime, "
                           "--format and --output-dir")
    if args.workers is not None and args.workers < 1:
        raise OnePassError("--workers must be at least 1")
    hotwords = hotwords_from_args(args)  # a bad --hotwords-file or boost stops here
    if args.ray is None:
        if args.workers not in (None, 1) or args.num_gpus or args.num_cpus != 1.0:
            raise OnePassError("--workers, --num-cpus and --num-gpus need --ray (without it the job runs in "
                               "this process)")
        asr = load(args)
        asr.language(args.language)  # a bad language or chunk size fails before any file
        asr.config.right_context_for_chunk_ms(args.chunk_ms)
        asr.hotwords(hotwords)  # ... or a phrase past a limit
        summary = run_job(args.manifest, args.output, run_local(asr, args.chunk_ms, hotwords), args.language)
    else:
        summary = _run_on_ray(args, hotwords)
    print(f"onepass: {args.output}: {summary.done} transcribed, {summary.skipped} already there, "
          f"{summary.failed} failed (of {summary.total})", file=sys.stderr)
    return 1 if summary.failed else 0


def _run_on_ray(args: argparse.Namespace, hotwords):
    from ..manifest import read_manifest, run_job
    from ..ray import require_ray
    from ..ray.batch import run_ray
    from ..ray.config import ModelSpec
    from ..ray.deployment import check_resources, ray_session

    require_ray("data")
    read_manifest(args.manifest)  # a bad manifest fails before Ray starts
    device = "cuda" if args.num_gpus > 0 and args.device == "cpu" else args.device
    model = ModelSpec(model=str(args.model), device=device, dtype=args.dtype, backend=args.backend,
                      onnx_dir=args.onnx_dir, quantize=args.quantize)
    if args.ray == "local":
        model.check_local()
    with ray_session(None if args.ray == "local" else args.ray) as local:
        check_resources(args.workers or 1, args.num_cpus, args.num_gpus, fixed=local, noun="worker")
        execute = run_ray(model, args.chunk_ms, args.workers or 1, args.num_cpus, args.num_gpus, hotwords)
        return run_job(args.manifest, args.output, execute, args.language)
