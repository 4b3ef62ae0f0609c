"""Case generators for tests/test_server_fuzz.py (no tests here): each returns a message, request or
file together with what the protocol must answer, so the runner can count the replies."""

from __future__ import annotations

import base64
import io
import json
import random
import struct

import httpx
import numpy as np
import soundfile as sf


# ---- any protocol ---------------------------------------------------------------------------------
DG_TYPES = ("KeepAlive", "Finalize", "CloseStream")
JUNK_SCALARS = [None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63), 10**30, 1.5, -0.0, 1e308, "", " ", "0", "-1",
                "abc", "null", "true", "NaN", "1e309", "\x00", "\u202e", "é" * 3, "😀", "a" * 5000, [], {}, [1, "x"],
                {"a": {"b": [None]}}]


def junk(rng: random.Random, depth: int = 0):
    """A random JSON value of any type."""
    pick = rng.random()
    if pick < 0.5 or depth > 2:
        return rng.choice(JUNK_SCALARS)
    if pick < 0.65:
        return rng.randint(-(10**12), 10**12)
    if pick < 0.8:
        return "".join(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0xD7FF)]))
                       for _ in range(rng.randint(0, 40)))
    if pick < 0.9:
        return [junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["type", "x", "", "audio", "session"]): junk(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def bad_json(rng: random.Random) -> str:
    """Text that is not valid JSON: truncated, corrupted or plain junk."""
    good = json.dumps({"type": rng.choice(DG_TYPES + ("input_audio_buffer.append",)), "x": [1, {"y": "z"}]})
    pick = rng.random()
    if pick < 0.4:
        text = good[:rng.randint(1, len(good) - 1)]
    elif pick < 0.7:
        pos = rng.randrange(len(good))
        text = good[:pos] + rng.choice("{}[]\",:\\\x00'") + good[pos + 1:]
    else:
        text = "".join(chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(1, 60)))
    try:
        json.loads(text)
        return "{" + text  # happened to be valid: make it not
    except ValueError:
        return text


def junk_text(rng: random.Random) -> str:
    v = junk(rng)
    return v if isinstance(v, str) else json.dumps(v)


# ---- Deepgram /v1/listen -----------------------------------------------------------------------------
DG_PARAMS = {"encoding": ["linear16", "float32", "mulaw", "LINEAR16", "", "opus"],
             "sample_rate": ["16000", "8000", "24000", "48000", "384000", "0", "1", "7999", "-16000", "16000.0",
                             "abc", "99999999999999999999", "²"],
             "channels": ["1", "2", "0", "65", "-1", "x"],
             "language": ["en-US", "de", "auto", "multi", "xx-XX", "", "en-US-x-y", "\u00e9", "a" * 300],
             "chunk_ms": ["80", "160", "560", "1120", "0", "-80", "123", "8000000", "abc"],
             "interim_results": ["true", "false", "maybe", ""], "endpointing": ["false", "true", "10", "-1", "soon"],
             "utterance_end_ms": ["1000", "0", "-5", "600001", "x"], "punctuate": ["true", "junk"],
             "model": ["nova-3", "", "x" * 100]}


def dg_query(rng: random.Random, junky: bool) -> tuple[str, dict]:
    params = {"chunk_ms": rng.choice(["160", "560"])}
    if rng.random() < 0.3:
        params["encoding"] = "float32"
    if rng.random() < 0.2:
        params["channels"] = "2"
    if rng.random() < 0.2:
        params["sample_rate"] = rng.choice(["8000", "48000"])
    if junky:
        for name in rng.sample(sorted(DG_PARAMS), rng.randint(1, 3)):
            params[name] = rng.choice(DG_PARAMS[name])
    return str(httpx.QueryParams(params)), params


def dg_frame(rng: random.Random, params: dict) -> tuple[str | bytes, str]:
    """One client message and what it should get: "schema", "data", "finalize" or "none"."""
    pick = rng.random()
    if pick < 0.25:
        return bad_json(rng), "schema"
    if pick < 0.45:
        msg = rng.choice([junk(rng), {"type": junk(rng)}, {"type": rng.choice(DG_TYPES).lower()},
                          {"type": rng.choice(DG_TYPES) + " "}, {"Type": "KeepAlive"}, [{"type": "KeepAlive"}]])
        text = json.dumps(msg)
        return text, ("schema" if not (isinstance(msg, dict) and msg.get("type") in DG_TYPES) else "close")
    if pick < 0.55:  # valid controls, junk beside them
        kind = rng.choice(["KeepAlive", "KeepAlive", "Finalize"])
        return json.dumps({"type": kind, rng.choice(["x", "type2", ""]): junk(rng)}), kind.lower()
    # binary frames: random, truncated, odd-length
    enc = params.get("encoding", "linear16")
    frame = (2 if enc == "linear16" else 4) * int(params.get("channels", "1"))
    n = rng.choice([0, 1, 2, 3, 5, frame, frame + 1, rng.randint(0, 4000)])
    if rng.random() < 0.5:
        data = bytes(rng.getrandbits(8) for _ in range(n)) if n < 64 else rng.randbytes(n)
    else:  # plausible audio, possibly cut mid-sample
        data = (np.array([rng.uniform(-0.3, 0.3) for _ in range(n // 2 + 1)]) * 32767).astype("<i2").tobytes()[:n]
    if n % frame:
        return data, "data"
    if enc == "float32":
        x = np.frombuffer(data, "<f4")
        return data, ("data" if not np.isfinite(x).all() else "none")
    return data, "none"


# ---- raw WebSocket frames ----------------------------------------------------------------------------
def ws_frame(opcode: int, payload: bytes, rng: random.Random, masked: bool = True, length: int | None = None) -> bytes:
    """A raw client frame (RFC 6455), optionally unmasked or declaring a ``length`` it does not send."""
    n = len(payload) if length is None else length
    head = bytes([0x80 | opcode])
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    key = rng.randbytes(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# ---- OpenAI Realtime /v1/realtime ----------------------------------------------------------------------
def rt_silence(rng: random.Random):
    """turn_detection.silence_duration_ms: junk, or valid values too long to end an item here (the
    replies are counted, so server VAD must not commit items of its own)."""
    v = rng.choice([junk(rng), -1, 600_001, 10**20, 0, 100_000, 600_000, "240", None])
    return 100_000 if v is True or (isinstance(v, (int, float)) and 0 < v < 100_000) else v


def rt_session_junk(rng: random.Random) -> object:
    """A session.update ``session`` with junk in one or more fields (beta and GA shapes)."""
    if rng.random() < 0.1:
        return junk(rng)
    fields = {
        "input_audio_format": lambda: rng.choice([junk(rng), "pcm16", "pcm16_16000", "pcm16_", "pcm16_0",
                                                  "pcm16_99999999", "pcm16_²", "g711_ulaw", {"type": junk(rng)},
                                                  {"type": "audio/pcm", "rate": junk(rng)},
                                                  {"type": "audio/pcm", "rate": rng.choice([8000, 16000, 24000, 1,
                                                                                            384001, -5])}]),
        "input_audio_transcription": lambda: rng.choice([junk(rng), {"model": junk(rng)}, {"language": junk(rng)},
                                                         {"prompt": junk(rng)}, {"language": rng.choice(
                                                             ["en", "de-DE", "auto", "xx", "", "EN_us"])}]),
        "turn_detection": lambda: rng.choice([junk(rng), None, {"type": junk(rng)},
                                              {"silence_duration_ms": rt_silence(rng)}, {"threshold": junk(rng)},
                                              {"prefix_padding_ms": junk(rng)}]),
        "chunk_ms": lambda: rng.choice([junk(rng), 80, 160, 560, 1120, 0, -80, 123, 10**9, "160"]),
    }
    session = {name: make() for name, make in fields.items() if rng.random() < 0.4}
    if rng.random() < 0.3:  # GA shape: audio.input.{format, transcription, turn_detection}
        ga = {"format": session.pop("input_audio_format", junk(rng)),
              "transcription": session.pop("input_audio_transcription", junk(rng))}
        if "turn_detection" in session:
            ga["turn_detection"] = session.pop("turn_detection")
        session["audio"] = rng.choice([{"input": ga}, {"input": junk(rng)}, junk(rng)])
        session["type"] = rng.choice(["transcription", junk(rng)])
    return session


def _junk_turn_detection_safe(msg: dict) -> dict:
    """Where a session looks for turn_detection, make a valid silence_duration_ms long (or absent ones
    long: the server's default would be used), so that server VAD never completes items here."""
    s = msg.get("session")
    for holder in (s, (s.get("audio") or {}).get("input") if isinstance(s, dict) and isinstance(s.get("audio"), dict)
                   else None):
        if isinstance(holder, dict) and isinstance(holder.get("turn_detection"), dict):
            td = holder["turn_detection"]
            v = td.get("silence_duration_ms")
            if v is True or (isinstance(v, (int, float)) and 0 < v < 100_000) or v is None:
                td["silence_duration_ms"] = 100_000
    return msg


def rt_message(rng: random.Random, n: int) -> tuple[str | bytes, int]:
    """One client event and how many reply events it must get (0 or 1)."""
    pick = rng.random()
    eid = rng.choice([f"ev{n}", None, junk(rng)]) if rng.random() < 0.2 else f"ev{n}"
    if pick < 0.15:
        return bad_json(rng), 1
    if pick < 0.25:
        return rng.randbytes(rng.randint(0, 300)), 1  # binary frames are not part of this protocol
    if pick < 0.35:
        msg = rng.choice([junk(rng), {"type": junk(rng)}, {"type": "input_audio_buffer.append", "audio": junk(rng)},
                          {"type": "session.update", "session": junk(rng)}, {"type": "response.create"}])
    elif pick < 0.6:
        msg = {"type": rng.choice(["transcription_session.update", "session.update"]),
               "session": rt_session_junk(rng)}
    elif pick < 0.9:
        n_bytes = rng.choice([0, 1, 2, 3, 31, rng.randint(0, 6000)])
        audio = base64.b64encode(rng.randbytes(n_bytes)).decode()
        if rng.random() < 0.3:  # corrupt the base64: truncate it, or put junk characters in
            audio = rng.choice([audio[:rng.randint(0, len(audio))], audio + "*", "!" + audio, audio.replace("A", "-"),
                                audio + "===", " " + audio])
        msg = {"type": "input_audio_buffer.append", "audio": audio}
    else:
        msg = {"type": rng.choice(["input_audio_buffer.commit", "input_audio_buffer.clear"])}
    if isinstance(msg, dict) and eid is not None:
        msg["event_id"] = eid
    if isinstance(msg, dict):
        msg = _junk_turn_detection_safe(msg)
    return json.dumps(msg), rt_expected(msg)


def rt_expected(msg) -> int:
    """Replies the protocol gives: one for anything but an append of valid (or no) audio."""
    if not (isinstance(msg, dict) and msg.get("type") == "input_audio_buffer.append"):
        return 1
    if not isinstance(msg.get("event_id"), (str, type(None))) or not isinstance(msg.get("session"), (dict, type(None))):
        return 1
    audio = msg.get("audio")
    if audio is None or audio == "":
        return 0
    if not isinstance(audio, str):
        return 1
    try:
        data = base64.b64decode(audio, validate=True)
    except ValueError:
        return 1
    return 1 if len(data) % 2 else 0


# ---- REST /v1/audio/transcriptions and audio files ------------------------------------------------------
REST_FIELDS = {"model": lambda r: junk_text(r), "language": lambda r: r.choice([junk_text(r), "en", "auto", "xx-XX"]),
               "response_format": lambda r: r.choice(["json", "text", "srt", "vtt", "verbose_json", junk_text(r)]),
               "stream": lambda r: r.choice(["true", "false", "1", "0", "yes", "off", junk_text(r)]),
               "chunk_ms": lambda r: r.choice(["160", "560", "0", "-80", "123", "1e3", "99999999999999999999999",
                                               junk_text(r)]),
               "prompt": lambda r: junk_text(r),
               "temperature": lambda r: r.choice(["0", "0.2", "-1", "nan", "inf", "1e309", junk_text(r)]),
               "timestamp_granularities[]": lambda r: r.choice(["word", "segment", junk_text(r)]),
               "unknown_field": lambda r: junk_text(r)}


def make_audio_files(clip: np.ndarray) -> dict[str, bytes]:
    """Valid short files to corrupt: WAV (two layouts), FLAC, MP3 (when libsndfile writes it), OGG."""
    out = {}
    for name, fmt, subtype, rate, ch in [("wav", "WAV", "PCM_16", 16000, 1), ("wav", "WAV", "FLOAT", 8000, 2),
                                         ("flac", "FLAC", "PCM_16", 16000, 1), ("mp3", "MP3", None, 16000, 1),
                                         ("ogg", "OGG", "VORBIS", 16000, 1)]:
        buf = io.BytesIO()
        audio = clip[: rate // 4] if ch == 1 else np.stack([clip[: rate // 4]] * 2, axis=1)
        try:
            sf.write(buf, audio, rate, format=fmt, subtype=subtype)
        except (sf.LibsndfileError, TypeError, ValueError):
            continue
        out[f"{name}-{subtype}-{ch}"] = buf.getvalue()
    return out


def corrupt(rng: random.Random, files: dict[str, bytes]) -> tuple[str, bytes, str]:
    """(filename, content, kind): truncated headers, zero length, absurd fields, junk."""
    key = rng.choice(sorted(files))
    ext = key.split("-")[0]
    data = bytearray(files[key])
    pick = rng.random()
    if pick < 0.05:
        return f"x.{ext}", b"", "empty"
    if pick < 0.3:
        return f"x.{ext}", bytes(data[:rng.choice([1, 4, 12, 36, 44, 45, rng.randint(1, len(data) - 1)])]), "truncated"
    if pick < 0.55 and ext == "wav":  # absurd values in the RIFF/fmt/data header fields
        offset, size = rng.choice([(4, 4), (20, 2), (22, 2), (24, 4), (28, 4), (32, 2), (34, 2), (40, 4)])
        value = rng.choice([0, 1, 3, 7, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 8000, 384001])
        data[offset:offset + size] = (value & (256**size - 1)).to_bytes(size, "little")
        if rng.random() < 0.5:
            data = data[:rng.randint(44, len(data))]
        return f"x.{ext}", bytes(data), "wav_header"
    if pick < 0.7 and ext == "flac":  # STREAMINFO: rate (20 bits), channels, bits, total samples (36 bits)
        word = int.from_bytes(data[18:26], "big")
        rate = rng.choice([0, 1, 7, 8000, 655350, (1 << 20) - 1])
        total = rng.choice([0, 1, (1 << 36) - 1, 10**9])
        word = (word & ~(((1 << 20) - 1) << 44)) | (rate << 44)
        word = (word & ~((1 << 36) - 1)) | total
        data[18:26] = word.to_bytes(8, "big")
        if rng.random() < 0.5:
            data = data[:rng.randint(42, len(data))]
        return f"x.{ext}", bytes(data), "flac_header"
    if pick < 0.8 and ext == "mp3":  # ID3 with an absurd size, or a frame header then junk
        head = rng.choice([b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f", b"\xff\xfb\x90\x64", b"\xff\xf3\x00\x00"])
        return f"x.{ext}", head + rng.randbytes(rng.randint(0, 2000)), "mp3_header"
    if pick < 0.9:  # flipped bytes
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(min(len(data), 128))] = rng.getrandbits(8)
        return f"x.{ext}", bytes(data), "flipped"
    name = rng.choice([f"x.{ext}", "x", "x.txt", "../../x.wav", "é😀.flac", "x." + "a" * 300, ".wav",
                       "x.wav\x00.mp3", "x.w\x00v", "x./wav"])
    return name, rng.randbytes(rng.randint(1, 3000)), "junk"
