"""Bounded fuzzing of the whole server on a real uvicorn: both WebSocket protocols, the REST form
and corrupt audio files. No 5xx, no crash, every error in the protocol's own shape, no leaked
streams or leases, flat RSS, and the server still transcribes exactly afterwards.

Cases come from a seeded ``random.Random`` (``ONEPASS_FUZZ_SEED`` overrides the seed; the seed is
printed). The default suite runs FUZZ_CASES cases; ``-m slow`` runs ten times as many.
Run with ``-s`` (or ``-rP``) to see the counts; ``ONEPASS_FUZZ_DEBUG=<file>`` appends the events of
a Realtime connection whose replies do not add up. The cases come from test_server_fuzz_cases.py.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import gc
import io
import json
import logging
import os
import random
import time

import httpx
import numpy as np
import pytest
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from onepass.server import ServerConfig, create_app
from onepass.server.testing import serve_in_thread
from tests.test_server_fuzz_cases import (REST_FIELDS, corrupt, dg_frame, dg_query, junk_text, make_audio_files,
                                          rt_message, ws_frame)

FUZZ_CASES = 10_000  # default suite
SLOW_FUZZ_CASES = 100_000  # -m slow
MAX_MESSAGE_BYTES = 64 << 10  # the fuzz server's WebSocket message limit (oversized frames are cheap)
MAX_UPLOAD_BYTES = 256 << 10  # and its upload limit
MAX_UPLOAD_S = 60.0  # and its limit on the decoded length of an upload, seconds
RSS_GROWTH_MIB = 64  # allowed RSS growth after warm-up (allocator noise; a leak per case is far more)
# uvicorn logs these itself, with a traceback, while handling the client's error correctly (close 1007)
UVICORN_OWN = ("Invalid UTF-8 sequence received from client.",)
# Share of the cases per category (WebSocket messages are cheap; uploads cost a decode each).
SHARES = {"deepgram": 0.45, "realtime": 0.45, "rest_form": 0.08, "corrupt_audio": 0.02}


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def as_int16_float(audio: np.ndarray) -> np.ndarray:
    return np.frombuffer(pcm16(audio), "<i2").astype(np.float32) / 32768


class Tally:
    """Counts of everything seen, printed at the end and checked by the assertions."""

    def __init__(self):
        self.cases = collections.Counter()  # per category
        self.kinds = collections.Counter()  # per category/kind of case
        self.http = collections.Counter()  # HTTP statuses (REST and refused upgrades)
        self.closes = collections.Counter()  # WebSocket close codes
        self.errors = collections.Counter()  # structured errors by protocol and variant/code
        self.seconds = collections.Counter()  # wall time per category
        self.problems: list[str] = []  # assertion failures, collected to report them all

    def problem(self, what: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(what)


class ErrorLog(logging.Handler):
    """Server-side log records at WARNING and above (tracebacks are ERROR)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


# ---- Deepgram /v1/listen ------------------------------------------------------------------------


async def dg_connection(url: str, rng: random.Random, n_messages: int, tally: Tally) -> int:
    """One connection with a (possibly junk) query and ``n_messages`` fuzz messages; returns cases."""
    junky = rng.random() < 0.3
    query, params = dg_query(rng, junky)
    tally.kinds["deepgram/query"] += 1
    try:
        ws = await connect(f"{url}/v1/listen?{query}", compression=None, max_size=None, open_timeout=30)
    except InvalidStatus as exc:
        status = exc.response.status_code
        tally.http[status] += 1
        body = json.loads(exc.response.body or b"null")
        if status != 400 or not (isinstance(body, dict) and body.get("error", {}).get("message")
                                 and body["error"]["type"] == "invalid_request_error"):
            tally.problem(f"deepgram refused {query!r} with {status} {exc.response.body[:200]!r}")
        return 1
    tally.http[101] += 1
    expected = collections.Counter()
    oversize = False
    got: list[dict] = []
    async with ws:
        async def reader():
            try:
                async for m in ws:
                    got.append(json.loads(m))
            except ConnectionClosed:  # closed with an error code: checked below
                pass
        task = asyncio.create_task(reader())
        for _ in range(n_messages):
            if rng.random() < 0.005:
                await ws.send(rng.randbytes(MAX_MESSAGE_BYTES + rng.randint(1, 5000)))
                tally.kinds["deepgram/oversize"] += 1
                oversize = True
                break
            msg, want = dg_frame(rng, params)
            if want == "close":  # a valid CloseStream picked at random: keep it for the end
                msg, want = json.dumps({"type": "KeepAlive"}), "keepalive"
            tally.kinds[f"deepgram/{'text' if isinstance(msg, str) else 'binary'}/{want}"] += 1
            expected[want] += 1
            await ws.send(msg)
        raw = None if oversize or rng.random() > 0.15 else await raw_ending(ws, rng, tally, "deepgram")
        if not oversize and raw is None:
            await ws.send(json.dumps({"type": "CloseStream"}))
        try:
            await asyncio.wait_for(task, 60)
        except asyncio.TimeoutError:
            tally.problem(f"deepgram connection {query!r} hung")
            task.cancel()
        code = ws.close_code
    tally.closes[None if code is None else int(code)] += 1
    if raw is not None:  # the connection was broken on purpose: only the shape of what came is checked
        check_raw_close(raw, code, tally, "deepgram")
        expected.clear()
        oversize = None
    for m in got:
        if m.get("type") == "Error":
            ok = isinstance(m.get("variant"), str) and isinstance(m.get("description"), str) and m["description"]
            tally.errors[f"deepgram/{m.get('variant')}"] += 1
            if not ok:
                tally.problem(f"deepgram error not in shape: {m}")
        elif m.get("type") not in ("Results", "UtteranceEnd", "Metadata"):
            tally.problem(f"deepgram unexpected message {str(m)[:200]}")
    errors = collections.Counter(m["variant"] for m in got if m.get("type") == "Error")
    finals = sum(1 for m in got if m.get("type") == "Results" and m.get("from_finalize"))
    want_errors = collections.Counter({"SchemaError": expected["schema"],
                                       "DataError": expected["data"] + bool(oversize)})
    if oversize is None:
        return 1 + n_messages
    if +errors != +want_errors:
        tally.problem(f"deepgram {query!r}: errors {dict(errors)} != expected {dict(want_errors)}")
    if oversize:
        if code != 1009:
            tally.problem(f"deepgram oversize closed with {code}")
    else:
        if code != 1000 or not got or got[-1].get("type") != "Metadata":
            tally.problem(f"deepgram {query!r} ended with {code} and {str(got[-1:])[:300]}")
        if finals != expected["finalize"]:
            tally.problem(f"deepgram {query!r}: {finals} from_finalize results for {expected['finalize']} Finalize")
    return 1 + n_messages


# ---- broken connections (both protocols) ------------------------------------------------------------


async def raw_ending(ws, rng: random.Random, tally: Tally, protocol: str) -> str:
    """End a connection the wrong way: vanish, a truncated frame, invalid UTF-8, an unmasked frame,
    a reserved opcode, or raw junk. Returns the kind."""
    kind = rng.choice(["abort", "truncated_frame", "bad_utf8", "unmasked", "reserved_opcode", "junk"])
    tally.kinds[f"{protocol}/broken/{kind}"] += 1
    payload = rng.randbytes(rng.randint(1, 200))
    if kind == "truncated_frame":  # declares more than it sends, then the client vanishes
        ws.transport.write(ws_frame(2, payload, rng, length=len(payload) + rng.randint(1, 100_000))[:-1])
    elif kind == "bad_utf8":
        ws.transport.write(ws_frame(1, b"{\"type\": \"\xff\xfe\"}", rng))
    elif kind == "unmasked":
        ws.transport.write(ws_frame(2, payload, rng, masked=False))
    elif kind == "reserved_opcode":
        ws.transport.write(ws_frame(rng.choice([3, 4, 5, 6, 7, 11, 12]), payload, rng))
    elif kind == "junk":
        ws.transport.write(rng.randbytes(rng.randint(1, 300)))
    if kind == "junk":  # may read as the start of a long frame; the server then waits: vanish after 1 s
        try:
            await asyncio.wait_for(ws.wait_closed(), 1.0)
        except asyncio.TimeoutError:
            kind = "junk_then_abort"
    if kind in ("abort", "truncated_frame", "junk_then_abort"):
        ws.transport.abort()
    return kind


def check_raw_close(kind: str, code: int | None, tally: Tally, protocol: str) -> None:
    """A protocol violation is answered with a protocol close code (or the client vanished itself)."""
    if kind not in ("abort", "truncated_frame", "junk_then_abort") and code not in (1002, 1007, 1009):
        tally.problem(f"{protocol}: {kind} closed with {code}")


# ---- OpenAI Realtime /v1/realtime -----------------------------------------------------------------
RT_REPLIES = ("error", "transcription_session.updated", "session.updated", "input_audio_buffer.committed",
              "input_audio_buffer.cleared")


async def rt_connection(url: str, rng: random.Random, n_messages: int, tally: Tally) -> int:
    query = {"intent": "transcription"}
    if rng.random() < 0.2:
        query[rng.choice(["intent", "sample_rate"])] = rng.choice(["16000", "0", "1", "384001", "²", "١٦٠٠٠", "x",
                                                                   "", "99999999999999999999"])
    tally.kinds["realtime/query"] += 1
    got: list[dict] = []
    async with connect(f"{url}/v1/realtime?{httpx.QueryParams(query)}", compression=None, max_size=None,
                       open_timeout=30) as ws:
        tally.http[101] += 1
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if first.get("type") == "error":  # a bad sample_rate in the query: error, then close 1008
            check_rt_error(first, tally)
            try:
                await asyncio.wait_for(ws.recv(), 30)
                tally.problem(f"realtime {query}: more after the opening error")
            except ConnectionClosed:
                pass
            tally.closes[None if ws.close_code is None else int(ws.close_code)] += 1
            if ws.close_code != 1008:
                tally.problem(f"realtime {query}: closed with {ws.close_code} after the opening error")
            return 1
        if not first.get("type", "").endswith("session.created"):
            tally.problem(f"realtime {query}: first event {first}")
        expected, oversize, sent, replies = 0, False, [], 0

        async def read_replies(until: int, to_close: bool = False) -> int:
            n = 0
            try:
                while n < until or to_close:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    got.append(m)
                    n += m.get("type") in RT_REPLIES
            except asyncio.TimeoutError:
                tally.problem(f"realtime {query}: {n} replies of {until} after 60 s")
            except ConnectionClosed:
                if not to_close:
                    tally.problem(f"realtime {query}: closed by the server ({ws.close_code})")
            return n

        for i in range(n_messages):
            if rng.random() < 0.005:  # all replies first: closing for the oversize may cut the pending ones
                replies += await read_replies(expected)
                await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": "A" * (MAX_MESSAGE_BYTES + rng.randint(1, 5000))}))
                tally.kinds["realtime/oversize"] += 1
                oversize, expected = True, expected + 1
                replies += await read_replies(1, to_close=True)
                break
            msg, want = rt_message(rng, i)
            sent.append((msg if isinstance(msg, str) else repr(msg), want))
            tally.kinds[f"realtime/{'text' if isinstance(msg, str) else 'binary'}/{'reply' if want else 'none'}"] += 1
            expected += want
            await ws.send(msg)
        if not oversize and rng.random() < 0.15:
            raw = await raw_ending(ws, rng, tally, "realtime")
            try:
                while True:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            except (ConnectionClosed, asyncio.TimeoutError):
                pass
            check_raw_close(raw, ws.close_code, tally, "realtime")
            tally.closes[None if ws.close_code is None else int(ws.close_code)] += 1
            for m in got:
                if m.get("type") == "error":
                    check_rt_error(m, tally)
            return 1 + n_messages
        if not oversize:
            replies += await read_replies(expected - replies)
        want_total = expected
    tally.closes[None if ws.close_code is None else int(ws.close_code)] += 1
    if oversize and ws.close_code != 1009:
        tally.problem(f"realtime oversize closed with {ws.close_code}")
    if replies != want_total:
        tally.problem(f"realtime {query}: {replies} replies for {want_total} events needing one")
        if os.environ.get("ONEPASS_FUZZ_DEBUG"):
            with open(os.environ["ONEPASS_FUZZ_DEBUG"], "a") as f:
                json.dump({"sent": sent, "got": got}, f)
                f.write("\n")
    for m in got:
        if m.get("type") == "error":
            check_rt_error(m, tally)
        elif not isinstance(m.get("type"), str) or not isinstance(m.get("event_id"), str):
            tally.problem(f"realtime event without type/event_id: {str(m)[:200]}")
    return 1 + n_messages


def check_rt_error(m: dict, tally: Tally) -> None:
    err = m.get("error")
    ok = (isinstance(m.get("event_id"), str) and isinstance(err, dict) and isinstance(err.get("type"), str)
          and isinstance(err.get("message"), str) and err["message"] and isinstance(err.get("code"), str))
    tally.errors[f"realtime/{err.get('code') if isinstance(err, dict) else None}"] += 1
    if not ok or err.get("type") != "invalid_request_error":
        tally.problem(f"realtime error not in shape: {str(m)[:300]}")


# ---- REST /v1/audio/transcriptions ------------------------------------------------------------------


def check_rest(r: httpx.Response, what: str, tally: Tally) -> None:
    tally.http[r.status_code] += 1
    if r.status_code == 200:  # a transcript in the format asked for: SSE ends with "done", JSON has text
        kind = r.headers.get("content-type", "")
        if kind.startswith("text/event-stream"):
            events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
            if not events or events[-1].get("type") != "transcript.text.done":
                tally.problem(f"REST {what}: SSE ended with {r.text[-300:]!r}")
        elif kind.startswith("application/json") and not isinstance(r.json().get("text"), str):
            tally.problem(f"REST {what}: 200 without text: {r.text[:300]!r}")
        return
    try:
        body = r.json()
        err = body["error"]
        ok = isinstance(err["message"], str) and err["message"] and isinstance(err["type"], str)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok or not 400 <= r.status_code < 500:
        tally.problem(f"REST {what}: {r.status_code} {r.text[:300]!r}")
    else:
        tally.errors[f"rest/{r.status_code}/{err['type']}"] += 1


def rest_form_case(client: httpx.Client, rng: random.Random, wav: bytes, tally: Tally) -> None:
    data = {}
    for name in rng.sample(sorted(REST_FIELDS), rng.randint(1, 4)):
        data[name] = REST_FIELDS[name](rng) if rng.random() < 0.9 else [REST_FIELDS[name](rng) for _ in range(2)]
    pick = rng.random()
    if pick < 0.8:  # most cases: an empty file, so that a case costs no decoding
        files = {"file": ("x.wav", b"")}
    elif pick < 0.9:
        files = {"file": ("x.wav", wav)}
    elif pick < 0.95:
        files, data["file"] = {}, junk_text(rng)  # the file as a plain field, or missing
    else:
        files = {"file": ("x.wav", b""), "file2": ("y.wav", b"x")}
    kind = "empty" if pick < 0.8 else "wav" if pick < 0.9 else "no_file" if pick < 0.95 else "two"
    tally.kinds[f"rest_form/{kind}"] += 1
    r = client.post("/v1/audio/transcriptions", data=data, files=files or None,
                    headers={} if files else {"Content-Type": "multipart/form-data; boundary=xyz"})
    check_rest(r, f"form {str(data)[:200]}", tally)
    if r.status_code == 200 and files.get("file", ("", b""))[1] == b"":
        tally.problem("REST accepted an empty file")


# ---- the run --------------------------------------------------------------------------------------------
def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def ws_rounds(url: str, rng: random.Random, protocol: str, cases: int, tally: Tally) -> None:
    done = 0
    while done < cases:
        n = min(cases - done, rng.randint(10, 120))
        connection = dg_connection if protocol == "deepgram" else rt_connection
        try:
            done += await connection(url, rng, n, tally)
        except (ConnectionClosed, OSError, EOFError, asyncio.TimeoutError) as exc:  # the server broke it
            tally.problem(f"{protocol} connection failed: {type(exc).__name__}: {exc}")
            done += n
    tally.cases[protocol] += done


async def beyond_ws_max_size(url: str, tally: Tally) -> None:
    """One message over uvicorn's own limit (serve_in_thread's ws_max_size, 16 MiB) per protocol:
    the WebSocket layer closes with 1009 before our code sees it."""
    for path in ("/v1/listen", "/v1/realtime?intent=transcription"):
        protocol = "deepgram" if "listen" in path else "realtime"
        async with connect(f"{url}{path}", compression=None, max_size=None) as ws:
            try:
                await ws.send(b"\0" * ((16 << 20) + 1))
                await asyncio.wait_for(ws.wait_closed(), 30)
            except ConnectionClosed:
                pass
        tally.kinds[f"{protocol}/beyond_ws_max_size"] += 1
        tally.cases[protocol] += 1
        tally.closes[None if ws.close_code is None else int(ws.close_code)] += 1
        if ws.close_code != 1009:
            tally.problem(f"{protocol}: a 16 MiB message closed with {ws.close_code}")


def fuzz_round(http: str, rng: random.Random, cases: int, clip: np.ndarray, files: dict, tally: Tally) -> None:
    ws = http.replace("http", "ws")
    share = {k: max(1, round(v * cases)) for k, v in SHARES.items()}
    t0 = time.perf_counter()
    asyncio.run(ws_rounds(ws, rng, "deepgram", share["deepgram"], tally))
    t1 = time.perf_counter()
    asyncio.run(ws_rounds(ws, rng, "realtime", share["realtime"], tally))
    t2 = time.perf_counter()
    tally.seconds.update({"deepgram": t1 - t0, "realtime": t2 - t1})
    wav = files["wav-PCM_16-1"]
    with httpx.Client(base_url=http, timeout=60) as client:
        for _ in range(share["rest_form"]):
            rest_form_case(client, rng, wav, tally)
        tally.cases["rest_form"] += share["rest_form"]
        t3 = time.perf_counter()
        tally.seconds["rest_form"] += t3 - t2
        for _ in range(share["corrupt_audio"]):
            name, content, kind = corrupt(rng, files)
            tally.kinds[f"corrupt_audio/{kind}"] += 1
            r = client.post("/v1/audio/transcriptions", files={"file": (name, content)},
                            data={"response_format": rng.choice(["json", "verbose_json", "srt"])})
            check_rest(r, f"{kind} file {name!r} of {len(content)} bytes", tally)
        tally.cases["corrupt_audio"] += share["corrupt_audio"]
        tally.seconds["corrupt_audio"] += time.perf_counter() - t3


def transcribes_exactly(http: str, asr, clip: np.ndarray) -> None:
    """After the fuzzing: all three protocols still give the offline transcript."""
    expected = asr.transcribe(as_int16_float(clip), 16000, chunk_ms=560).text
    assert expected
    buf = io.BytesIO()
    sf.write(buf, as_int16_float(clip), 16000, format="WAV", subtype="PCM_16")
    r = httpx.post(f"{http}/v1/audio/transcriptions", files={"file": ("c.wav", buf.getvalue())},
                   data={"chunk_ms": "560"}, timeout=60)
    assert r.status_code == 200 and r.json()["text"] == expected

    async def live():
        ws_url = http.replace("http", "ws")
        async with connect(f"{ws_url}/v1/listen?chunk_ms=560") as ws:
            for i in range(0, len(clip) * 2, 3200):
                await ws.send(pcm16(clip)[i:i + 3200])
            await ws.send(json.dumps({"type": "CloseStream"}))
            dg = [json.loads(m) async for m in ws]
        async with connect(f"{ws_url}/v1/realtime?intent=transcription") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "transcription_session.update", "session": {
                "input_audio_format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None,
                "chunk_ms": 560}}))
            await ws.recv()
            for i in range(0, len(clip) * 2, 9600):
                await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": base64.b64encode(pcm16(clip)[i:i + 9600]).decode()}))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if m["type"].endswith("transcription.completed") or m["type"] == "error":
                    return dg, m

    dg, rt = asyncio.run(live())
    assert dg[-1]["type"] == "Metadata" and dg[-1]["onepass"]["transcript"] == expected
    assert rt.get("transcript") == expected, rt


def run_fuzz(asr, clips, total: int) -> None:
    seed = int(os.environ.get("ONEPASS_FUZZ_SEED", random.SystemRandom().randrange(2**32)))
    print(f"\nserver fuzz: seed {seed} (ONEPASS_FUZZ_SEED={seed} repeats this run), {total} cases")
    rng = random.Random(seed)
    clip = clips["normal"]
    files = make_audio_files(clip)
    config = ServerConfig(max_streams=8, endpoint_blank_ms=None, max_message_bytes=MAX_MESSAGE_BYTES,
                          max_upload_bytes=MAX_UPLOAD_BYTES, max_upload_s=MAX_UPLOAD_S)
    app = create_app(asr, config)
    log = ErrorLog()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")]
    tally = Tally()
    t0 = time.perf_counter()
    with serve_in_thread(app) as http:
        for lg in loggers:
            lg.addHandler(log)
        try:
            warm = total // 10
            fuzz_round(http, rng, warm, clip, files, tally)  # warm-up: caches, pools, allocator arenas
            asyncio.run(beyond_ws_max_size(http.replace("http", "ws"), tally))  # its 16 MiB: before the baseline
            gc.collect()
            rss0 = rss_mib()
            fuzz_round(http, rng, total - warm, clip, files, tally)
            gc.collect()
            rss1 = rss_mib()
            state = app.state.onepass
            deadline = time.monotonic() + 10
            while (state.runner.active or state.runner.engine.streams) and time.monotonic() < deadline:
                time.sleep(0.05)
            leaked = (state.runner.active, len(state.runner.engine.streams), len(state.sessions))
            alive = state.runner.alive
            health = httpx.get(f"{http}/health").json()
            elapsed = time.perf_counter() - t0
            report(tally, seed, elapsed, rss0, rss1, log)
            transcribes_exactly(http, asr, clip)
        finally:
            for lg in loggers:
                lg.removeHandler(log)
    assert sum(tally.cases.values()) >= total
    assert not tally.problems, "\n".join(tally.problems)
    assert not any(s >= 500 for s in tally.http), tally.http
    errors = [r for r in log.records if r.levelno >= logging.ERROR and r.getMessage() not in UVICORN_OWN]
    assert not errors, [r.getMessage() for r in errors[:5]]
    assert alive and health["status"] == "ok"
    assert leaked == (0, 0, 0), f"leases, engine streams, sessions left open: {leaked}"
    assert rss1 - rss0 < RSS_GROWTH_MIB, f"RSS grew {rss1 - rss0:.0f} MiB"


def report(tally: Tally, seed: int, elapsed: float, rss0: float, rss1: float, log: ErrorLog) -> None:
    n = sum(tally.cases.values())
    print(f"server fuzz: {n} cases in {elapsed:.1f} s ({n / elapsed:.0f}/s); seed {seed}")
    print(f"  cases:   {dict(tally.cases)}")
    print(f"  seconds: { {k: round(v, 1) for k, v in tally.seconds.items()} }")
    print(f"  kinds:   {dict(sorted(tally.kinds.items()))}")
    print(f"  HTTP:    {dict(sorted(tally.http.items()))}")
    print(f"  closes:  {dict(sorted(tally.closes.items(), key=str))}")
    print(f"  errors:  {dict(sorted(tally.errors.items()))}")
    print(f"  RSS:     {rss0:.0f} MiB after warm-up, {rss1:.0f} MiB at the end ({rss1 - rss0:+.1f} MiB)")
    levels = collections.Counter(f"{r.name} {r.levelname}" for r in log.records)
    print(f"  server log records >= WARNING: {dict(levels)}")
    for rec in list({f"{r.name} {r.getMessage()[:30]}": r for r in log.records}.values())[:5]:
        print(f"    {rec.name} {rec.levelname}: {rec.getMessage()[:300]}")
    print(f"  problems: {len(tally.problems)}")
    for p in tally.problems[:20]:
        print(f"    {p[:400]}")


def test_server_fuzz(asr, clips):
    run_fuzz(asr, clips, FUZZ_CASES)


@pytest.mark.slow
def test_server_fuzz_slow(asr, clips):
    run_fuzz(asr, clips, SLOW_FUZZ_CASES)
