"""``onepass serve --ray``: the same server, one engine per Ray Serve replica."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from ..errors import OnePassError
from ..ray import require_ray
from ..ray.config import AUTO_STREAMS_LIMIT, ModelSpec, ReplicaConfig, ScaleConfig

log = logging.getLogger("onepass.server")
STATUS_PERIOD_S = 10.0  # how often the foreground process checks the app's health


def scale_config(args: argparse.Namespace) -> ScaleConfig:
    address = None if args.ray == "local" else args.ray
    common = dict(address=address, num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    if args.min_replicas is None and args.max_replicas is None:
        return ScaleConfig(num_replicas=args.replicas or 1, **common)
    if args.replicas is not None:
        raise OnePassError("give either --replicas (a fixed count) or --min-replicas/--max-replicas (autoscaling)")
    if args.max_replicas is None:
        raise OnePassError("--min-replicas needs --max-replicas (the most replicas the autoscaler may start)")
    return ScaleConfig(num_replicas=None, min_replicas=args.min_replicas or 1, max_replicas=args.max_replicas,
                       **common)


def replica_config(args: argparse.Namespace) -> ReplicaConfig:
    from .serve import server_config

    device = args.device
    if args.num_gpus > 0 and device == "cpu":
        device = "cuda"  # Ray gives the replica its GPU(s) as CUDA_VISIBLE_DEVICES
    if args.cuda_graphs and not device.startswith("cuda"):
        raise OnePassError("--cuda-graphs needs a CUDA --device (or --num-gpus)")
    from ..step.runner import check_beam

    beam = check_beam(getattr(args, "beam", 1))
    model = ModelSpec(model=str(args.model), device=device, dtype=args.dtype, backend=args.backend,
                      onnx_dir=args.onnx_dir, quantize=args.quantize, cuda_graphs=args.cuda_graphs, beam=beam)
    auto = args.max_streams == "auto"
    return ReplicaConfig(model=model, server=server_config(args, AUTO_STREAMS_LIMIT if auto else args.max_streams),
                         auto_streams=auto)


def run_on_ray(args: argparse.Namespace) -> int:
    scale, replica = scale_config(args), replica_config(args)
    if scale.address is None:
        replica.model.check_local()
    require_ray("serve")
    from ray import serve

    from ..ray.deployment import check_resources, deploy, ray_session, undeploy

    with ray_session(scale.address) as local:
        check_resources(scale.min_replicas if scale.autoscaling else scale.num_replicas, scale.num_cpus,
                        scale.num_gpus, fixed=local)
        count = (f"{scale.num_replicas} replica(s)" if not scale.autoscaling
                 else f"{scale.min_replicas} to {scale.max_replicas} replicas")
        log.info("starting %s of %s on Ray ...", count, replica.server.model_name)
        deploy(replica, scale, args.host, args.port, log_level=args.log_level)
        streams = "measured per replica" if replica.auto_streams else str(replica.server.max_streams)
        log.info("serving %s on http://%s:%d through Ray Serve (%s, streams per replica: %s); Ctrl-C drains "
                 "and stops", replica.server.model_name, args.host, args.port, count, streams)
        stop = _wait_for_signal(lambda: _app_status(serve, scale.name))
        log.info("%s: draining open streams (up to %g s) ...", stop, replica.server.drain_timeout_s)
        undeploy(scale.name)
    return 0


def _app_status(serve, name: str) -> None:
    try:
        app = serve.status().applications.get(name)
    except Exception as exc:  # noqa: BLE001 - the cluster may be restarting; keep serving
        log.warning("could not read the Serve status: %s", exc)
        return
    if app is not None and str(app.status).split(".")[-1] not in ("RUNNING", "DEPLOYING"):
        log.warning("application %s is %s: %s", name, app.status, app.message)


def _wait_for_signal(every_period) -> str:
    """Block until SIGINT or SIGTERM, calling ``every_period()`` meanwhile; returns the signal name."""
    got: list[str] = []
    done = threading.Event()

    def handler(signum, _frame):
        got.append(signal.Signals(signum).name)
        done.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not done.wait(STATUS_PERIOD_S):
            every_period()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return got[0]


def app(args: dict):
    """Serve application builder for config files and KubeRay (``import_path:
    onepass.cli.serve_ray:app``): ``args["options"]`` holds `onepass serve` options as on the
    command line, e.g. ``"--model nvidia/... --device cuda --max-streams auto --replicas 4"``
    (--host, --port and --ray do not apply: the Serve config sets the proxy's address)."""
    import shlex

    from ..ray.deployment import build
    from .main import build_parser

    options = args.get("options", "")
    argv = shlex.split(options) if isinstance(options, str) else [str(a) for a in options]
    parsed = build_parser().parse_args(["serve", *argv, "--ray", "auto"])
    return build(replica_config(parsed), scale_config(parsed))
