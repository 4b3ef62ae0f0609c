"""The GPU check of issue 29: one run, one JSON (``$OUT/check.json``) and one log (``$OUT/check.log``).

    python tools/gpu/check.py                      # on a CUDA device (tools/gpu/check.sh sets it up)
    ONEPASS_GPU_REHEARSAL=1 python tools/gpu/check.py   # every section on the CPU, tiny models
    ONEPASS_GPU_QUICK=1 python tools/gpu/check.py       # a sub-minute rehearsal (the test suite's)

Sections, in order, each timed and written to the JSON when it ends (a failing section does not
stop the next; a global deadline skips what no longer fits):
  env             torch, device, packages
  identity        tiny NeMo reference models: target fp32 (TF32 off) token ids == CPU == NeMo, offline
                  and streamed through the engine
  graphs          graph replay == eager (torch.equal: labels, frames, encoder output, state) per bucket
  bf16_agreement  real-size random weights: bf16 vs fp32 token agreement, offline and streamed
  step_times      real size, bf16: eager and graph step time per (chunk size, bucket)
  memory          state bytes per stream (bf16), measured arena bytes per stream
  capacity        paced capacity per chunk size, graph engine and eager engine in the same run

Environment: OUT (output folder, default ./gpu-check-out), ONEPASS_GPU_BUDGET_S (seconds for the
whole run; the profile's default otherwise), ONEPASS_GPU_SECTIONS (comma list: run only these).
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # siblings, then the checkout's onepass

# onepass dependencies that the device image lacks and that are NOT carried as wheels (tools/gpu/
# prepare.sh carries transformers, regex, soundfile, soxr, cffi, pycparser): the rehearsal refuses to import
# them, so a check that needs one fails here, not on the device.
NOT_ON_DEVICE = ("fastapi", "starlette", "uvicorn", "pydantic", "pydantic_core", "websockets", "multipart",
                 "python_multipart", "jiwer", "sherpa_onnx")


class _Refuse:
    """A meta-path finder that makes ``names`` unimportable (the device image's view)."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"{name} is not on the device image (tools/gpu/check.py NOT_ON_DEVICE)")
        return None


if os.environ.get("ONEPASS_GPU_REHEARSAL") == "1" or os.environ.get("ONEPASS_GPU_QUICK") == "1":
    sys.meta_path.insert(0, _Refuse(NOT_ON_DEVICE))

import torch  # noqa: E402

import agreement  # noqa: E402
import identity  # noqa: E402
import paced  # noqa: E402
import realsize  # noqa: E402
import stepcheck  # noqa: E402
from report import Report, Unavailable  # noqa: E402

CHUNKS_MS = (80, 160, 320, 560, 1120)


@dataclass(frozen=True)
class Profile:
    name: str
    device: str  # where the checked model runs ("cuda" or "cpu")
    budget_s: float  # the whole run, sections included; check.sh kills the process a little after
    preset: str  # onepass.bench.factory preset of the real-size model
    identity_limit: int | None  # cases per model and mode (None: all 152 of references.json)
    graph_chunks_ms: tuple[int, ...]
    graph_buckets: tuple[int, ...]  # tiny model, fp32
    graph_real_buckets: tuple[int, ...]  # real-size model, bf16, at graph_real_chunk_ms
    graph_real_chunk_ms: int
    graph_steps: int  # steps per bucket (the graph side: 2 eager warm-ups, capture, replays)
    agreement_clips: int
    agreement_s: float  # seconds per clip
    agreement_chunks_ms: tuple[int, ...]
    time_chunks_ms: tuple[int, ...]
    time_buckets: tuple[int, ...]
    time_reps: int
    beam_buckets: tuple[int, ...]  # real-size bf16 eager beam-4 steps at 160 ms (and greedy's from step_times)
    capacity_chunks_ms: tuple[int, ...]
    trial_s: float  # audio per stream in a capacity trial
    min_chunks: int  # ... but at least this many chunks
    max_streams: int
    ratio: float  # capacity bisection stops when first failure / last pass <= this
    # seconds kept back, when a section starts, for the sections after it
    reserve_s: dict
    threads: int | None = None  # torch CPU threads (None: torch's default). 1 in the rehearsal: tiny
    # models on a busy machine run ~50x slower with 2 threads spinning against other processes


DEVICE = Profile(
    name="device", device="cuda", budget_s=445.0, preset="nemotron-3.5", identity_limit=None,
    graph_chunks_ms=CHUNKS_MS, graph_buckets=(1, 2, 4, 8, 16, 32, 64), graph_real_buckets=(1, 8, 64, 256),
    graph_real_chunk_ms=160, graph_steps=6, agreement_clips=32, agreement_s=8.0, agreement_chunks_ms=(160, 1120),
    time_chunks_ms=CHUNKS_MS, time_buckets=(1, 16, 64, 256, 1024, 4096), time_reps=3, beam_buckets=(1, 16, 64, 256),
    capacity_chunks_ms=CHUNKS_MS, trial_s=3.0, min_chunks=3, max_streams=6144, ratio=1.2,
    reserve_s=dict(env=425, identity=390, graphs=315, bf16_agreement=270, step_times=190, beam=165, memory=158,
                   capacity=0))
REHEARSAL = Profile(
    name="rehearsal", device="cpu", budget_s=290.0, preset="tiny", identity_limit=None,
    graph_chunks_ms=CHUNKS_MS, graph_buckets=(1, 2, 4, 8), graph_real_buckets=(1, 8), graph_real_chunk_ms=160,
    graph_steps=5, agreement_clips=4, agreement_s=4.0, agreement_chunks_ms=(160, 1120), time_chunks_ms=CHUNKS_MS,
    time_buckets=(1, 4, 16), time_reps=3, beam_buckets=(1, 4), capacity_chunks_ms=CHUNKS_MS, trial_s=2.0,
    min_chunks=2, max_streams=64, ratio=1.3, threads=1,
    reserve_s=dict(env=270, identity=240, graphs=210, bf16_agreement=190, step_times=170, beam=150, memory=145,
                   capacity=0))
QUICK = replace(
    REHEARSAL, name="quick", budget_s=62.0, identity_limit=3, graph_chunks_ms=(160,), graph_buckets=(1, 4),
    graph_real_buckets=(4,), graph_steps=4, agreement_clips=2, agreement_s=2.0, agreement_chunks_ms=(160,),
    time_chunks_ms=(160,), time_buckets=(1, 4), beam_buckets=(1,), capacity_chunks_ms=(560,), trial_s=1.2,
    max_streams=8, ratio=2.0,
    reserve_s=dict(env=57, identity=47, graphs=39, bf16_agreement=33, step_times=25, beam=18, memory=16, capacity=0))


class Check:
    def __init__(self, profile: Profile, report: Report):
        self.p = profile
        self.report = report
        self.log = report.log
        self._real: dict = {}
        self.step_ms: dict[str, dict[int, dict[int, float]]] = {"eager": {}, "graph": {}}

    # ---- shared models ---------------------------------------------------------------
    def real(self, dtype: torch.dtype):
        """The real-size model on the target in ``dtype`` (built once, then cached)."""
        if "cpu" not in self._real:
            self.log(f"  building {self.p.preset} (random weights, calibrated) on the CPU")
            t = time.monotonic()
            self._real["cpu"], self._real["info"] = realsize.build(self.p.preset)
            self._real["info"]["build_s"] = round(time.monotonic() - t, 1)
        if dtype not in self._real:
            self._real[dtype] = realsize.moved(self._real["cpu"], self.p.device, dtype)
        return self._real[dtype]

    def tiny(self):
        if "tiny" not in self._real:
            import onepass

            self._real["tiny"] = onepass.load_model(identity.FIXTURES / "tiny_nemotron35.nemo",
                                                    device=self.p.device, backend="torch", prepack=False)
        return self._real["tiny"]

    def cuda_or_rehearsal(self) -> None:
        if self.p.device == "cuda" and not torch.cuda.is_available():
            raise Unavailable("torch sees no CUDA device (run with ONEPASS_GPU_REHEARSAL=1 for the CPU rehearsal)")

    # ---- sections ------------------------------------------------------------------
    def env(self, part: dict) -> None:
        import numpy

        part.update(python=platform.python_version(), torch=torch.__version__, numpy=numpy.__version__,
                    target=self.p.device, cuda_available=torch.cuda.is_available(), threads=torch.get_num_threads(),
                    cpu_count=os.cpu_count(), profile=asdict(self.p))
        for name in ("transformers", "soundfile", "soxr", "onnxruntime"):
            try:
                part[name] = __import__(name).__version__
            except Exception as exc:  # noqa: BLE001
                part[name] = f"missing: {exc}"
        part.update(gpu=None, gpu_memory_gib=None, capability=None, sms=None, cuda=None)  # same keys everywhere
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            part.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                        capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                        cuda=torch.version.cuda)
        try:
            stepcheck.step_api()
            from onepass.step import StepConfig

            part["step_api"] = "available"
            part["step_config_default"] = asdict(StepConfig())
        except Unavailable as exc:
            part["step_api"] = f"unavailable: {exc}"
        self.cuda_or_rehearsal()

    def identity(self, part: dict) -> None:
        self.cuda_or_rehearsal()
        identity.run(part, self.p.device, self.p.identity_limit, self.log)

    def graphs(self, part: dict) -> None:
        self.cuda_or_rehearsal()
        identity.exact_float32()
        rows = part["buckets"] = []
        models = ((f"{self.p.preset} bf16", lambda: self.real(torch.bfloat16), (self.p.graph_real_chunk_ms,),
                   self.p.graph_real_buckets),  # first: it builds the model the later sections use
                  ("tiny_nemotron35 fp32", self.tiny, self.p.graph_chunks_ms, self.p.graph_buckets))
        for model_name, get, chunks, buckets in models:
            try:
                asr = get()
            except Exception as exc:  # noqa: BLE001 - the other model's buckets still run
                part.setdefault("model_errors", {})[model_name] = f"{type(exc).__name__}: {exc}"
                self.log(f"  {model_name}: {type(exc).__name__}: {exc}")
                continue
            for chunk_ms in chunks:
                for b in buckets:
                    if self.report.time_left() < self.p.reserve_s["graphs"]:
                        part["complete"] = False
                        break
                    try:
                        row = stepcheck.graph_equality(asr, chunk_ms, b, self.p.graph_steps, seed=b + chunk_ms)
                    except Exception as exc:  # noqa: BLE001 - recorded as a difference; the next buckets run
                        row = dict(chunk_ms=chunk_ms, bucket=b, equal=False, mode=None,
                                   error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=6))
                        self.log(row["traceback"])
                        self._free()
                    rows.append(dict(model=model_name, **row))
                    self.log(f"  {model_name} {chunk_ms} ms bucket {row['bucket']}: "
                             f"{'equal' if row['equal'] else 'DIFFERENT'} ({row['mode']})")
                    self.report.write()
        part.setdefault("complete", True)
        part["mode"] = next((r["mode"] for r in rows if r["mode"]), None)
        bad = [r for r in rows if not r["equal"]]
        part["all_equal"] = bool(rows) and not bad
        if bad:
            part["status"] = f"failed: {len(bad)} of {len(rows)} buckets differ"
        elif "model_errors" in part:
            part["status"] = "error: " + "; ".join(f"{k}: {v}" for k, v in part["model_errors"].items())

    def bf16_agreement(self, part: dict) -> None:
        self.cuda_or_rehearsal()
        identity.exact_float32()
        fp32, bf16 = self.real(torch.float32), self.real(torch.bfloat16)
        part.update(model=self._real["info"], reference="fp32, TF32 off", clip_s=self.p.agreement_s)
        audio = agreement.clips(self.p.agreement_clips, self.p.agreement_s, seed=500)
        runs = part["runs"] = []
        for chunk_ms in self.p.agreement_chunks_ms:
            runs.append(agreement.offline(fp32, bf16, audio, chunk_ms))
            self.log(f"  offline {chunk_ms} ms: agreement {runs[-1]['agreement']}")
            self.report.write()
        runs.append(agreement.streamed(fp32, bf16, audio, self.p.agreement_chunks_ms[0]))
        self.log(f"  engine stream {self.p.agreement_chunks_ms[0]} ms: agreement {runs[-1]['agreement']}")
        edits, tokens = sum(r["edits"] for r in runs), sum(r["fp32_tokens"] for r in runs)
        part.update(agreement=round(1 - edits / tokens, 5) if tokens else None, goal=0.995)
        del fp32, bf16
        self._real.pop(torch.float32, None)  # the later sections run bf16 only
        self._free()

    def step_times(self, part: dict) -> None:
        self.cuda_or_rehearsal()
        asr = self.real(torch.bfloat16)
        part.update(dtype="bfloat16", model=self._real["info"]["description"],
                    what="median wall ms of one step of a full bucket: batch packed and copied, run, labels read")
        rows = part["rows"] = []
        for chunk_ms in self.p.time_chunks_ms:
            cap = self._fit(asr, max(self.p.time_buckets))
            eager = stepcheck.Stepper(asr, chunk_ms, cap, graph=False)
            # one arena for both: half the memory (the graph replays on the state eager steps wrote)
            steppers = {"eager": eager, "graph": stepcheck.Stepper(asr, chunk_ms, cap, graph=True, share=eager)}
            slow = set()
            for b in self.p.time_buckets:
                if b > cap or self.report.time_left() < self.p.reserve_s["step_times"]:
                    part["complete"] = False
                    break
                row = dict(chunk_ms=chunk_ms, bucket=b)
                sets = [eager.rows(b) for _ in range(2)]  # the same inputs for both modes (one arena)
                if asr.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                for m, s in steppers.items():
                    if m in slow:
                        continue
                    try:
                        ms = stepcheck.time_steps(s, sets, self.p.time_reps)
                    except torch.cuda.OutOfMemoryError:
                        row[f"{m}_ms"] = "out of memory"
                        slow.add(m)
                        self._free()
                        continue
                    row[f"{m}_ms"] = round(ms, 3)
                    self.step_ms[m].setdefault(chunk_ms, {})[b] = ms
                    if ms > 2 * chunk_ms:
                        slow.add(m)
                row["graph_mode"], row["captures"] = steppers["graph"].mode, steppers["graph"].captures
                if isinstance(row.get("eager_ms"), float) and isinstance(row.get("graph_ms"), float):
                    row["speedup"] = round(row["eager_ms"] / row["graph_ms"], 2)
                row["gpu_peak_mb"] = (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                                      if asr.device.type == "cuda" else None)
                rows.append(row)
                self.log(f"  {chunk_ms} ms bucket {b}: eager {row.get('eager_ms')} ms, graph {row.get('graph_ms')} ms")
                self.report.write()
                if len(slow) == 2:
                    break
            steppers = eager = sets = None  # free the arena before the next chunk size
            self._free()
        part.setdefault("complete", True)

    def beam(self, part: dict) -> None:
        """Beam search on the device: the tiny model's offline and engine-streamed token ids with beam 4
        (with and without phrases) must be equal, and so must its eager and graph steps (buckets 1, 4, 8);
        then real-size bf16 steps of beam 4 at 160 ms, eager and graph, against greedy's (step_times)."""
        self.cuda_or_rehearsal()
        from onepass.step import StepConfig

        tiny = self.tiny()
        before = tiny.model_step.config
        tiny.configure_step(StepConfig(beam=4))
        try:
            audio = agreement.clips(3, self.p.agreement_s, seed=700)
            plain = tiny.transcribe_batch(audio, language="en-US", chunk_ms=160)
            words = [w for t in plain for w in t.text.split()][:3] or ["a"]
            cases = part["equality"] = []
            for hotwords in (None, words):
                offline = [t.token_ids for t in tiny.transcribe_batch(audio, language="en-US", chunk_ms=160,
                                                                       hotwords=hotwords)]
                streamed = []
                for a in audio:
                    session = tiny.stream(language="en-US", chunk_ms=160, hotwords=hotwords)
                    for i in range(0, len(a), 2560):
                        session.accept(a[i:i + 2560], 16000)
                    streamed.append(session.finish().token_ids)
                cases.append(dict(hotwords=hotwords, equal=offline == streamed,
                                  tokens=sum(map(len, offline))))
                self.log(f"  tiny beam 4, phrases {hotwords}: offline == streamed: {offline == streamed}")
        finally:
            tiny.configure_step(before)
        identity.exact_float32()
        graphs = part["graph_equality"] = []
        for b in (1, 4, 8):
            row = stepcheck.graph_equality(tiny, 160, b, self.p.graph_steps, seed=900 + b, beam=4)
            graphs.append(row)
            self.log(f"  tiny beam 4, 160 ms bucket {row['bucket']}: {'equal' if row['equal'] else 'DIFFERENT'} "
                     f"({row['mode']})")
        part["all_equal"] = all(c["equal"] for c in cases) and all(r["equal"] for r in graphs)
        self.report.write()
        asr = self.real(torch.bfloat16)
        rows = part["rows"] = []
        cap = self._fit(asr, max(self.p.beam_buckets))
        eager = stepcheck.Stepper(asr, 160, cap, graph=False, beam=4)
        steppers = {"eager": eager, "graph": stepcheck.Stepper(asr, 160, cap, graph=True, share=eager, beam=4)}
        for b in self.p.beam_buckets:
            if b > cap or self.report.time_left() < self.p.reserve_s["beam"]:
                part["complete"] = False
                break
            sets = [eager.rows(b) for _ in range(2)]
            row = dict(chunk_ms=160, bucket=b)
            for m, st in steppers.items():
                ms = stepcheck.time_steps(st, sets, self.p.time_reps)
                greedy = self.step_ms[m].get(160, {}).get(b)
                row.update({f"beam4_{m}_ms": round(ms, 3),
                            f"greedy_{m}_ms": None if greedy is None else round(greedy, 3),
                            f"{m}_ratio": None if not greedy else round(ms / greedy, 2)})
            rows.append(row)
            self.log(f"  beam 4, 160 ms bucket {b}: {row}")
            self.report.write()
        steppers = eager = sets = None
        self._free()
        part.setdefault("complete", True)
        if not part["all_equal"]:
            part["status"] = "failed: beam search offline and streamed token ids, or eager and graph steps, differ"

    def memory(self, part: dict) -> None:
        self.cuda_or_rehearsal()
        asr = self.real(torch.bfloat16)
        part["dtype"] = "bfloat16"
        per = stepcheck.state_bytes_per_stream(asr)
        part.update(state_bytes_per_stream=per, state_mb_per_stream=round(per / 2**20, 3), goal_mb=6.0)
        part["arena_bytes_per_stream_measured"] = {  # the allocator's count: None without CUDA
            c: stepcheck.arena_bytes_measured(asr, c, 256) for c in self.p.time_chunks_ms}
        self._free()

    def capacity(self, part: dict) -> None:
        self.cuda_or_rehearsal()
        asr = self.real(torch.bfloat16)
        from onepass.bench.audio import speech_like

        clips = [speech_like(self.p.trial_s + 2, seed=900 + i) for i in range(8)]
        part.update(dtype="bfloat16", model=self._real["info"]["description"], trial_s=self.p.trial_s,
                    rule="p95 chunk latency <= chunk and no stream more than 2 chunks (+100 ms) behind",
                    note="every trial is a new engine: with graphs its warm-up and captures fall inside the clock")
        modes = ("graphs", "eager")
        pairs = [(m, c) for c in self.p.capacity_chunks_ms for m in modes]  # both modes of a chunk size together
        setters = {}
        for m in modes:
            part[m] = {"status": "running", "chunks": []}
            try:
                setters[m], part[m]["step"] = paced.step_setter(m, asr)
            except Unavailable as exc:
                part[m]["status"] = f"unavailable: {exc}"
                pairs = [p for p in pairs if p[0] != m]
        for i, (m, chunk_ms) in enumerate(pairs):
            share = self.report.time_left() / (len(pairs) - i)
            step_ms = self.step_ms["graph" if m == "graphs" else "eager"].get(chunk_ms, {})
            guess = paced.seed_guess(step_ms, chunk_ms)
            self.log(f"  {m} {chunk_ms} ms: guess {guess}, {share:.0f} s")
            try:
                with paced.engine_settings(max_batch=paced.BIG_BATCH) as settings:
                    part[m]["engine"] = {k: settings[k] for k in ("applied", "ignored", "via")}
                    res = paced.search(asr, clips, chunk_ms, guess, self.p.max_streams, self.p.trial_s,
                                       self.p.min_chunks, time.monotonic() + share, self.p.ratio, settings,
                                       setters[m], self.log)
            except Exception as exc:  # noqa: BLE001 - the other chunk sizes and modes still run
                res = dict(chunk_ms=chunk_ms, streams=0, complete=False, error=f"{type(exc).__name__}: {exc}",
                           traceback=traceback.format_exc(limit=6))
                self.log(res["traceback"])
                self._free()
            part[m]["chunks"].append(res)
            self.report.write()
        if "eager" in setters:
            setters["eager"]()  # leave the recognizer with the plain step
        for m in modes:
            if part[m]["status"] == "running":
                done = part[m]["chunks"]
                errors = [c for c in done if "error" in c]
                part[m]["status"] = (f"error: {len(errors)} chunk sizes raised" if errors else
                                     "ok" if done and all(c["complete"] for c in done) else "incomplete: deadline")
                part[m]["streams"] = {c["chunk_ms"]: c["streams"] for c in done}
        g, e = part["graphs"].get("streams"), part["eager"].get("streams")
        if g and e:
            part["graphs_over_eager"] = {c: round(g[c] / e[c], 2) if e.get(c) else None for c in g}
        errors = [m for m in modes if part[m]["status"].startswith("error")]
        if errors:
            part["status"] = f"error: {', '.join(errors)} (see chunks)"

    # ---- helpers ---------------------------------------------------------------------
    def _fit(self, asr, streams: int) -> int:
        """``streams``, or fewer where their state would not fit in 60 % of free device memory."""
        if asr.device.type != "cuda":
            return streams
        free, _ = torch.cuda.mem_get_info()
        per = stepcheck.state_bytes_per_stream(asr)
        return max(1, min(streams, int(0.6 * free / per)))

    def _free(self) -> None:
        import gc

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def headline(s: dict) -> dict:
    """The figures the issue's goals name, in one place (None where a section did not give them)."""
    ident, cap = s["identity"], s["capacity"]
    steps = s["step_times"].get("rows", [])
    return dict(
        gpu=s["env"].get("gpu"),
        identity=ident.get("identical"),
        graph_replay_equal=s["graphs"].get("all_equal"),
        bf16_agreement=s["bf16_agreement"].get("agreement"),
        state_mb_per_stream=s["memory"].get("state_mb_per_stream"),
        capacity_graphs=cap.get("graphs", {}).get("streams"),
        capacity_eager=cap.get("eager", {}).get("streams"),
        best_step_speedup={c: max((r["speedup"] for r in steps if r["chunk_ms"] == c and "speedup" in r), default=None)
                           for c in sorted({r["chunk_ms"] for r in steps})})


def profile_from_env() -> Profile:
    p = QUICK if os.environ.get("ONEPASS_GPU_QUICK") == "1" else (
        REHEARSAL if os.environ.get("ONEPASS_GPU_REHEARSAL") == "1" else DEVICE)
    if os.environ.get("ONEPASS_GPU_BUDGET_S"):
        budget = float(os.environ["ONEPASS_GPU_BUDGET_S"])
        scale = budget / p.budget_s
        p = replace(p, budget_s=budget, reserve_s={k: v * scale for k, v in p.reserve_s.items()})
    return p


def main() -> int:
    p = profile_from_env()
    out = Path(os.environ.get("OUT") or "gpu-check-out")
    report = Report(out, p.name, p.budget_s)
    only = {s for s in os.environ.get("ONEPASS_GPU_SECTIONS", "").split(",") if s}
    report.log(f"profile {p.name}: target {p.device}, budget {p.budget_s:.0f} s, out {out.resolve()}")
    check = Check(p, report)
    if p.threads:
        torch.set_num_threads(p.threads)
    for name in report.data["sections"]:
        if only and name not in only and name != "env":
            report.data["sections"][name] = {"status": "not selected (ONEPASS_GPU_SECTIONS)"}
            continue
        report.section(name, getattr(check, name), p.reserve_s[name])
    report.data["headline"] = headline(report.data["sections"])
    statuses = {k: v["status"] for k, v in report.data["sections"].items()}
    bad = {k: s for k, s in statuses.items() if s.startswith(("failed", "error"))}
    report.data["failed_sections"] = sorted(bad)
    report.log("summary: " + ", ".join(f"{k} {s.split(':')[0]}" for k, s in statuses.items()))
    report.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
