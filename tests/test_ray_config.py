"""Ray settings without a cluster: the autoscaling policy's arithmetic on Serve's own context
class, the request limit above the stream limit, and the command line -> settings."""

from __future__ import annotations

import argparse

import pytest

from onepass.cli.main import build_parser
from onepass.cli.serve_ray import replica_config, scale_config
from onepass.errors import OnePassError
from onepass.ray.autoscale import StreamLoadPolicy, desired_replicas
from onepass.ray.config import AUTO_STREAMS_LIMIT, STATS_HEADROOM, ScaleConfig, max_ongoing_requests


@pytest.mark.parametrize("active, capacity, busy, want", [
    ([0, 0], [16, 16], [0.0, 0.0], 1),  # idle: down to one
    ([11, 11], [16, 16], [0.1, 0.1], 2),  # 22 streams / (16 x 0.7) = 1.96
    ([16, 16], [16, 16], [0.2, 0.2], 3),  # full: 32 / 11.2 = 2.9
    ([4, 4], [16, 16], [0.9, 0.9], 3),  # few streams but the engines are saturated: 1.8 / 0.7
    ([7], [10], [0.0], 1),  # exactly at the target
])
def test_desired_replicas(active, capacity, busy, want):
    assert desired_replicas(active, capacity, busy, current=len(active), target_load=0.7) == want


def test_policy_reads_serve_context():
    serve_config = pytest.importorskip("ray.serve.config")
    from ray.serve._private.common import DeploymentID, ReplicaID

    dep = DeploymentID(name="OnePass", app_name="onepass")
    r1, r2, gone = (ReplicaID(unique_id=u, deployment_id=dep) for u in ("a", "b", "c"))

    def ctx(metrics):
        return serve_config.AutoscalingContext(
            deployment_id=dep, deployment_name="OnePass", app_name="onepass", current_num_replicas=2,
            target_num_replicas=2, running_replicas=[r1, r2], total_num_requests=0, total_queued_requests=0,
            aggregated_metrics=metrics, raw_metrics=None, capacity_adjusted_min_replicas=1,
            capacity_adjusted_max_replicas=4, policy_state={}, last_scale_up_time=None,
            last_scale_down_time=None, current_time=None, config=None)

    policy = StreamLoadPolicy(target_load=0.5)
    full = {"active_streams": {r1: 8.0, r2: 8.0, gone: 8.0}, "capacity": {r1: 8.0, r2: 8.0, gone: 8.0},
            "busy": {r1: 0.3, r2: 0.3}}
    assert policy(ctx(full)) == (4, {})  # 16 streams / (8 x 0.5); the stopped replica is not counted
    assert policy(ctx({})) == (2, {})  # no reports yet: keep the target


def test_request_limit_sits_above_the_stream_limit():
    from onepass.ray.config import ModelSpec, ReplicaConfig
    from onepass.server import ServerConfig

    assert max_ongoing_requests(ReplicaConfig(ModelSpec(), ServerConfig(max_streams=5))) == 5 + STATS_HEADROOM
    auto = ReplicaConfig(ModelSpec(), ServerConfig(max_streams=5), auto_streams=True)
    assert max_ongoing_requests(auto) == AUTO_STREAMS_LIMIT + STATS_HEADROOM


def _args(*argv) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_command_line_to_settings():
    s = scale_config(_args("--ray"))
    assert (s.address, s.num_replicas, s.autoscaling) == (None, 1, False)
    s = scale_config(_args("--ray", "auto", "--replicas", "3", "--num-cpus", "2"))
    assert (s.address, s.num_replicas, s.num_cpus) == ("auto", 3, 2.0)
    s = scale_config(_args("--ray", "--max-replicas", "4"))
    assert (s.autoscaling, s.min_replicas, s.max_replicas) == (True, 1, 4)
    r = replica_config(_args("--ray", "--num-gpus", "1", "--max-streams", "auto", "--api-key", "k"))
    assert r.model.device == "cuda" and r.auto_streams and r.server.api_keys == ("k",)
    r = replica_config(_args("--ray", "--max-streams", "3", "--chunk-ms", "160"))
    assert (r.server.max_streams, r.server.chunk_ms, r.auto_streams) == (3, 160, False)
    assert r.model.beam == 1 and replica_config(_args("--ray", "--beam", "4")).model.beam == 4


@pytest.mark.parametrize("argv, message", [
    (["--ray", "--replicas", "2", "--max-replicas", "3"], "either --replicas"),
    (["--ray", "--min-replicas", "2"], "--min-replicas needs --max-replicas"),
    (["--ray", "--min-replicas", "3", "--max-replicas", "2"], "1 <= --min-replicas <= --max-replicas"),
    (["--ray", "--cuda-graphs"], "--cuda-graphs needs a CUDA"),
    (["--ray", "--beam", "0"], "beam size must be 1 to 16"),
])
def test_bad_combinations(argv, message):
    args = _args(*argv)
    with pytest.raises(OnePassError, match=message):
        scale_config(args), replica_config(args)


def test_ray_options_need_ray(capsys):
    from onepass.cli.main import main

    assert main(["serve", "--replicas", "2"]) == 2
    assert "--replicas only apply with --ray" in capsys.readouterr().err
    with pytest.raises(OnePassError):
        ScaleConfig(num_replicas=0)


def test_application_builder_takes_serve_options():
    """What a Serve config file or a KubeRay RayService deploys (import_path onepass.cli.serve_ray:app)."""
    pytest.importorskip("ray.serve")
    from ray.serve import Application

    from onepass.cli.serve_ray import app

    built = app({"options": "--model demo --max-streams 3 --min-replicas 1 --max-replicas 4 --num-cpus 2"})
    assert isinstance(built, Application)
    with pytest.raises(SystemExit):
        app({"options": "--no-such-option"})


def test_a_failed_replica_shows_the_users_error():
    from onepass.ray.deployment import replica_error

    trace = ("Failed to update the deployments ['OnePass'].\nTraceback (most recent call last):\n  File \"x.py\", "
             "line 1, in load\nonepass.errors.OnePassError: model '/m' not found: give a model directory")
    assert replica_error(trace) == "model '/m' not found: give a model directory"
    assert replica_error("boom\nTraceback:\nValueError: bad thing") == "ValueError: bad thing"
    assert replica_error("Deploying application x failed.") == "Deploying application x failed."


def test_a_missing_local_model_fails_before_ray_starts(tmp_path):
    from onepass.ray.config import ModelSpec

    with pytest.raises(OnePassError, match="not found"):
        ModelSpec(model=str(tmp_path / "nothing")).check_local()
    ModelSpec(model="demo").check_local()
    ModelSpec(model=str(tmp_path)).check_local()  # exists: the replica decides whether it is a model
    ModelSpec(model="nvidia/some-model").check_local()  # a hub id: fetched where it is loaded
