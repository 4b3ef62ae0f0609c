"""Settings of a Ray deployment: what each replica loads, and how many replicas run where."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OnePassError
from ..server.config import ServerConfig

STATS_HEADROOM = 32  # requests a replica takes beyond its streams: /health, /ready, /metrics, REST
AUTO_STREAMS_LIMIT = 64  # the most streams `--max-streams auto` measures for (server.capacity.calibrate)


@dataclass(frozen=True)
class ModelSpec:
    """How a replica or a batch worker loads its model (the `--model` options of the CLI)."""

    model: str = "demo"  # directory, .nemo file, hub id or 'demo'
    device: str = "cpu"  # torch device inside the worker ('cuda' is the GPU Ray assigned to it)
    dtype: str = "float32"
    backend: str = "auto"  # see `onepass serve --help`
    onnx_dir: str | None = None
    quantize: str = "none"
    cuda_graphs: bool | None = None  # None: on with a CUDA device
    beam: int = 1  # hypotheses per stream (1: greedy decoding; more: beam search, see `onepass serve --help`)

    def check_local(self) -> None:
        """Fail at once on a model path that does not exist here (for a Ray on this machine,
        where replicas would otherwise retry loading it for a minute before giving up)."""
        from pathlib import Path

        from ..checkpoints.hub import looks_like_hub_id

        if self.model != "demo" and not Path(self.model).expanduser().exists() and not looks_like_hub_id(self.model):
            raise OnePassError(f"model {self.model!r} not found: give a model directory, a .nemo file or a "
                               "Hugging Face Hub id (org/name)")

    def load(self):
        """Load the recognizer and configure its model step (runs in the worker)."""
        from .. import load_model
        from ..step import StepConfig

        asr = load_model(self.model, device=self.device, dtype=self.dtype, backend=self.backend,
                         onnx_dir=self.onnx_dir, quantize=self.quantize)
        cuda = self.device.startswith("cuda")
        if self.cuda_graphs and not cuda:
            raise OnePassError("--cuda-graphs needs a CUDA --device")
        asr.configure_step(StepConfig(cuda_graphs=cuda if self.cuda_graphs is None else self.cuda_graphs,
                                      beam=self.beam))
        return asr


@dataclass(frozen=True)
class ReplicaConfig:
    """One Serve replica: one engine, its own admission control, the same app as `onepass serve`."""

    model: ModelSpec
    server: ServerConfig  # max_streams is the replica's stream limit (ignored when auto_streams)
    auto_streams: bool = False  # measure the stream limit on the replica's own hardware at start


@dataclass(frozen=True)
class ScaleConfig:
    """How many replicas, on which resources, and how Serve scales and stops them."""

    address: str | None = None  # Ray to join: None starts a local Ray, 'auto' the running cluster
    num_replicas: int | None = 1  # fixed count; None: autoscale between min and max
    min_replicas: int = 1
    max_replicas: int = 1
    num_cpus: float = 1.0  # per replica
    num_gpus: float = 0.0  # per replica
    target_load: float = 0.7  # autoscaling keeps streams / capacity (and engine busy time) near this
    upscale_delay_s: float = 10.0  # load must stay high this long before a replica is added
    downscale_delay_s: float = 600.0  # and low this long before one is drained and removed
    look_back_s: float = 30.0  # window the load is averaged over
    name: str = "onepass"  # Serve application name
    route_prefix: str = "/"

    def __post_init__(self):
        if self.num_replicas is not None and self.num_replicas < 1:
            raise OnePassError("--replicas must be at least 1")
        if self.num_replicas is None and not 1 <= self.min_replicas <= self.max_replicas:
            raise OnePassError("need 1 <= --min-replicas <= --max-replicas")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise OnePassError("--num-cpus and --num-gpus cannot be negative")

    @property
    def autoscaling(self) -> bool:
        return self.num_replicas is None


def max_ongoing_requests(replica: ReplicaConfig) -> int:
    """Serve's per-replica request limit: above the stream limit, so that onepass's own gate
    refuses streams (503 + Retry-After) and health, readiness and metrics are never queued
    behind a full replica (Serve queues what passes this limit; the handshake would hang)."""
    streams = AUTO_STREAMS_LIMIT if replica.auto_streams else replica.server.max_streams
    return streams + STATS_HEADROOM


def graceful_shutdown_s(replica: ReplicaConfig) -> float:
    """How long Serve waits for a stopping replica: the drain, plus time to send the last results."""
    return replica.server.drain_timeout_s + 10.0
