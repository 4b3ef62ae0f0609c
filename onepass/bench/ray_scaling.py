"""Ray Serve against `onepass serve` on one machine: the proxy's cost per message and the
streams admitted within a latency budget, for `onepass serve` and for 1 and 2 Serve replicas.

    python -m onepass.bench.ray_scaling [--model demo] [--budget-ms 500] [--json out.json]

Round trips: one stream sends a Deepgram ``Finalize`` (no audio: the app, the engine thread
and back) or a 160 ms chunk plus ``Finalize`` (one model step more) and waits for its
``from_finalize`` result, alternating between the two servers so both see the same machine.
Capacity: N streams send speech at real-time pace in chunks; each result's latency is the
time from sending the chunk its audio ends in to receiving it (client side, so the proxy is
included). A trial passes when the p95 is within the budget and nobody is refused; N doubles,
then bisects (``capacity.bracket``). The load generator runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import numpy as np

from ..audio import SAMPLE_RATE, load_for_model
from .capacity import bracket
from .measure import load_average

SAMPLES = ("en-US", "de-DE", "es-ES")


def speech(seconds: float) -> bytes:
    import onepass

    root = os.path.join(onepass.__path__[0], "assets", "samples")
    parts = [load_for_model(os.path.join(root, f"{n}.wav"))[0] for n in SAMPLES]
    one = np.concatenate([np.concatenate([p, np.zeros(SAMPLE_RATE // 4, np.float32)]) for p in parts])
    audio = np.tile(one, math.ceil(seconds * SAMPLE_RATE / len(one)))[:int(seconds * SAMPLE_RATE)]
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready")


# ---- round trips -------------------------------------------------------------------------
async def round_trips(urls: dict[str, str], chunk: bytes, n: int) -> dict[str, dict[str, float]]:
    """Median and p95 round trip (ms) of Finalize alone and of a chunk + Finalize, per server."""
    from websockets.asyncio.client import connect

    times: dict[str, dict[str, list[float]]] = {k: {"finalize": [], "chunk": []} for k in urls}
    sockets = {k: await connect(f"{u.replace('http', 'ws')}/v1/listen?chunk_ms=160") for k, u in urls.items()}
    try:
        for i in range(n + 5):
            for name, ws in sockets.items():
                for kind, payload in (("finalize", None), ("chunk", chunk)):
                    t0 = time.perf_counter()
                    if payload:
                        await ws.send(payload)
                    await ws.send('{"type": "Finalize"}')
                    while not json.loads(await ws.recv()).get("from_finalize"):
                        pass
                    if i >= 5:  # the first few warm the path up
                        times[name][kind].append((time.perf_counter() - t0) * 1000)
    finally:
        for ws in sockets.values():
            await ws.close()
    return {name: {f"{kind}_{stat}_ms": round(f(v), 2) for kind, v in kinds.items()
                   for stat, f in (("p50", statistics.median), ("p95", p95))}
            for name, kinds in times.items()}


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else math.inf


# ---- capacity ----------------------------------------------------------------------------
async def paced_stream(url: str, audio: bytes, chunk_ms: int, start_s: float, latencies: list, refused: list):
    import websockets
    from websockets.asyncio.client import connect

    step = chunk_ms * SAMPLE_RATE // 1000 * 2
    sent: list[float] = []
    try:
        ws = await connect(f"{url.replace('http', 'ws')}/v1/listen?chunk_ms={chunk_ms}&interim_results=true")
    except websockets.InvalidStatus as exc:
        refused.append(exc.response.status_code)
        return

    async def read():
        async for m in ws:
            m = json.loads(m)
            if m.get("type") == "Results" and m["duration"] > 0:
                k = max(0, math.ceil(round((m["start"] + m["duration"]) * 1000) / chunk_ms) - 1)
                if k < len(sent):
                    latencies.append(time.perf_counter() - sent[k])
            elif m.get("type") == "Metadata":
                return

    async with ws:
        reader = asyncio.create_task(read())
        await asyncio.sleep(start_s)  # streams start spread over one chunk, as real clients do
        t0 = time.perf_counter()
        for i, pos in enumerate(range(0, len(audio), step)):
            await asyncio.sleep(max(0.0, t0 + i * chunk_ms / 1000 - time.perf_counter()))
            sent.append(time.perf_counter())
            await ws.send(audio[pos:pos + step])
        await ws.send('{"type": "CloseStream"}')
        await asyncio.wait_for(reader, 120)


def trial(url: str, n: int, audio: bytes, chunk_ms: int, budget_ms: float) -> dict:
    latencies: list[float] = []
    refused: list[int] = []

    async def run():
        await asyncio.gather(*(paced_stream(url, audio, chunk_ms, i * chunk_ms / 1000 / n, latencies, refused)
                               for i in range(n)))

    asyncio.run(run())
    lat_ms = [x * 1000 for x in latencies]
    result = {"streams": n, "p50_ms": round(statistics.median(lat_ms), 1) if lat_ms else None,
              "p95_ms": round(p95(lat_ms), 1) if lat_ms else None, "results": len(lat_ms),
              "refused": len(refused), "load_1m": load_average()[:1]}
    result["passed"] = bool(lat_ms) and not refused and p95(lat_ms) <= budget_ms
    return result


def capacity(name: str, url: str, audio: bytes, args) -> dict:
    trials = []

    def run(n: int) -> bool:
        t = trial(url, n, audio, args.chunk_ms, args.budget_ms)
        trials.append(t)
        print(f"  {name}: {n} streams: p95 {t['p95_ms']} ms, refused {t['refused']} -> "
              f"{'pass' if t['passed'] else 'fail'}", file=sys.stderr, flush=True)
        return t["passed"]

    best, worst, _ = bracket(run, args.first_guess, args.max_streams, ratio=1.0)
    return {"admitted": best, "first_failing": worst, "trials": trials}


# ---- the run -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="demo")
    p.add_argument("--backend", default="auto")
    p.add_argument("--chunk-ms", type=int, default=160)
    p.add_argument("--budget-ms", type=float, default=500.0, help="p95 latency a trial must stay within")
    p.add_argument("--seconds", type=float, default=8.0, help="audio per stream in a capacity trial")
    p.add_argument("--round-trips", type=int, default=200)
    p.add_argument("--max-streams", type=int, default=64)
    p.add_argument("--first-guess", type=int, default=4)
    p.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2, help="the local Ray's CPUs")
    p.add_argument("--haproxy", action="store_true",
                   help="Serve's HAProxy mode (RAY_SERVE_ENABLE_HA_PROXY=1) instead of its Python proxy")
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args(argv)

    from ..ray.config import ModelSpec, ReplicaConfig, ScaleConfig
    from ..ray.deployment import deploy, ray_session
    from ..server import ServerConfig

    audio = speech(args.seconds)
    chunk = audio[:args.chunk_ms * SAMPLE_RATE // 1000 * 2]
    direct_port, serve_port = free_port(), free_port()
    direct_url, serve_url = f"http://127.0.0.1:{direct_port}", f"http://127.0.0.1:{serve_port}"
    server = subprocess.Popen([sys.executable, "-m", "onepass", "serve", "--model", args.model, "--backend",
                               args.backend, "--port", str(direct_port), "--max-streams", str(args.max_streams),
                               "--log-level", "warning"])
    out: dict = {"machine": {"cores": os.cpu_count(), "load_average_start": load_average()},
                 "settings": {k: v for k, v in vars(args).items() if k != "json"}}
    try:
        wait_ready(direct_url)  # first: it fills the ONNX export cache the replicas then read
        replica = ReplicaConfig(ModelSpec(model=args.model, backend=args.backend),
                                ServerConfig(max_streams=args.max_streams, max_batch=args.max_streams,
                                             chunk_ms=args.chunk_ms))
        if args.haproxy:  # read by Serve at import, in this process and the Ray processes it starts
            os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
        with ray_session(None, num_cpus=args.num_cpus):
            deploy(replica, ScaleConfig(num_replicas=1, num_cpus=1, name="bench"), port=serve_port)
            print("round trips ...", file=sys.stderr, flush=True)
            rt = asyncio.run(round_trips({"onepass serve": direct_url, "Ray Serve": serve_url}, chunk,
                                         args.round_trips))
            out["round_trip"] = rt
            out["proxy_overhead_ms"] = {k: round(rt["Ray Serve"][k] - rt["onepass serve"][k], 2)
                                        for k in rt["Ray Serve"]}
            out["capacity"] = {"onepass serve": capacity("onepass serve", direct_url, audio, args)}
            server.terminate()  # its engine would compete with the replicas
            server.wait(30)
            out["capacity"]["Ray Serve, 1 replica"] = capacity("1 replica", serve_url, audio, args)
            deploy(replica, ScaleConfig(num_replicas=2, num_cpus=1, name="bench"), port=serve_port)
            out["capacity"]["Ray Serve, 2 replicas"] = capacity("2 replicas", serve_url, audio, args)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(30)
    out["machine"]["load_average_end"] = load_average()
    print(report(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


def report(out: dict) -> str:
    lines = ["| round trip, ms (p50 / p95) | onepass serve | Ray Serve | overhead |", "|---|---|---|---|"]
    rt, over = out["round_trip"], out["proxy_overhead_ms"]
    for kind, label in (("finalize", "Finalize only"), ("chunk", "160 ms chunk + Finalize")):
        cells = [f"{rt[s][f'{kind}_p50_ms']} / {rt[s][f'{kind}_p95_ms']}" for s in ("onepass serve", "Ray Serve")]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {over[f'{kind}_p50_ms']} / {over[f'{kind}_p95_ms']} |")
    lines += ["", "| server | streams admitted | first failing | p95 at admitted, ms |", "|---|---|---|---|"]
    for name, c in out["capacity"].items():
        at = next((t["p95_ms"] for t in c["trials"] if t["streams"] == c["admitted"]), None)
        lines.append(f"| {name} | {c['admitted']} | {c['first_failing']} | {at} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
