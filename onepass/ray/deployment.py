"""Ray Serve: the deployment of `onepass serve` replicas and the cluster it runs on."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Iterator

from ..errors import OnePassError
from . import require_ray
from .autoscale import POLICY
from .config import ReplicaConfig, ScaleConfig, graceful_shutdown_s, max_ongoing_requests
from .replica import OnePassReplica

log = logging.getLogger("onepass.ray")
HEALTH_CHECK_PERIOD_S = 5.0


def build(replica: ReplicaConfig, scale: ScaleConfig):
    """The Serve application: ``scale`` replicas of the onepass app, each with ``replica``."""
    require_ray("serve")
    from ray import serve
    from ray.serve.config import AutoscalingConfig, AutoscalingPolicy

    options = dict(
        name="OnePass",
        ray_actor_options={"num_cpus": scale.num_cpus, "num_gpus": scale.num_gpus},
        max_ongoing_requests=max_ongoing_requests(replica),
        graceful_shutdown_timeout_s=graceful_shutdown_s(replica),
        graceful_shutdown_wait_loop_s=0.5,
        health_check_period_s=HEALTH_CHECK_PERIOD_S,
    )
    if scale.autoscaling:
        options["autoscaling_config"] = AutoscalingConfig(
            min_replicas=scale.min_replicas, max_replicas=scale.max_replicas,
            upscale_delay_s=scale.upscale_delay_s, downscale_delay_s=scale.downscale_delay_s,
            look_back_period_s=scale.look_back_s,
            policy=AutoscalingPolicy(policy_function=POLICY, policy_kwargs={"target_load": scale.target_load}))
    else:
        options["num_replicas"] = scale.num_replicas
    deployment = serve.deployment(serve.ingress()(OnePassReplica), **options)
    return deployment.bind(replica)


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[bool]:
    """Join Ray at ``address`` ('auto': the running cluster), or start a local one (None).
    Yields whether this process started Ray; a Ray it started is stopped on exit."""
    ray = require_ray("serve")
    if ray.is_initialized():
        yield False
        return
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a running Ray cluster ('ray start --head' first?)" if address == "auto" else f"Ray at {address}"
        raise OnePassError(f"could not connect to {where}: {first_line(exc)}") from None
    try:
        yield address is None
    finally:
        ray.shutdown()


def check_resources(count: int, num_cpus: float, num_gpus: float, fixed: bool, noun: str = "replica") -> None:
    """Fail (``fixed``: a Ray whose nodes will not change, such as a local one) or warn when
    ``count`` actors of ``num_cpus``/``num_gpus`` each need more than the cluster has: Ray would
    wait for them forever."""
    import ray

    total = ray.cluster_resources()
    need = {"CPU": count * num_cpus, "GPU": count * num_gpus}
    short = {k: v for k, v in need.items() if v > total.get(k, 0.0) + 1e-9}
    if not short:
        return
    what = ", ".join(f"{v:g} {k}s (this Ray has {total.get(k, 0.0):g})" for k, v in short.items())
    message = f"{count} {noun}(s) need {what}"
    if fixed:
        raise OnePassError(f"{message}: ask for fewer {noun}s, or lower --num-cpus or --num-gpus")
    log.warning("%s; Ray waits until the cluster has them", message)


def deploy(replica: ReplicaConfig, scale: ScaleConfig, host: str = "127.0.0.1", port: int = 8000,
           log_level: str = "warning") -> None:
    """Start Serve's HTTP proxy on ``host:port`` (if Serve is not running yet) and run the app;
    returns once every replica has loaded its model. Ray must be initialized. ``log_level``:
    Serve's and the replicas' logs ('info' includes an access log line per request)."""
    require_ray("serve")
    from ray import serve

    logging_config = {"log_level": log_level.upper()}
    # Never set request_timeout_s: Serve would cut every WebSocket after that many seconds.
    serve.start(http_options={"host": host, "port": port}, logging_config=logging_config)
    try:
        serve.run(build(replica, scale), name=scale.name, route_prefix=scale.route_prefix,
                  logging_config=logging_config)
    except Exception as exc:  # a replica that failed to start: show its error, not Serve's traceback
        raise OnePassError(f"the replicas did not start: {replica_error(_failure(serve, scale.name, exc))}") from None


def undeploy(name: str) -> None:
    """Delete the app: every replica drains its streams (closing them with 1001) and stops."""
    from ray import serve

    serve.delete(name)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _failure(serve, name: str, exc: BaseException) -> str:
    """Serve's error and the deployments' messages (which hold the replica's traceback)."""
    text = str(exc)
    try:
        app = serve.status().applications.get(name)
        text += "".join(f"\n{d.message}" for d in (app.deployments.values() if app else ()))
    except Exception:  # noqa: BLE001 - the error itself is still worth showing
        pass
    return text


def replica_error(text: str) -> str:
    """The user's error inside Serve's report of a failed replica: the OnePassError line, else
    the last exception line, else the first line."""
    found = re.findall(r"OnePassError: (.+)", text)
    if found:
        return found[-1].strip()
    lines = [ln.strip() for ln in text.splitlines() if re.match(r"\s*[\w.]+(Error|Exception): ", ln)]
    return lines[-1] if lines else (text.strip().splitlines() or ["unknown error"])[0]
