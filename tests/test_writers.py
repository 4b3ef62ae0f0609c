"""Output formats: captions parse and keep the text, json round-trips (no model needed)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from onepass.errors import OnePassError
from onepass.results import Transcript, Word
from onepass.writers import FORMATS, MAX_CUE_CHARS, MAX_CUE_S, format_transcript, make_cues, output_path

FRAME_S = 0.08  # the model's encoder frame: word times are multiples of it
TEXT = ("Hello world. This is a fairly long sentence that should be split across several caption "
        "lines, because it runs on! Does it work? Yes, R&D <tags> stay literal. Then a pause, "
        "and a late word.")


def make_transcript(text: str = TEXT, with_words: bool = True) -> Transcript:
    words, frame = [], 3
    for i, token in enumerate(text.split()):
        n = 1 + len(token) // 4
        if token == "late":
            frame += 40  # a 3.2 s silence
        # Consecutive words may share a frame (RNN-T emits several tokens per frame).
        start = frame - 1 if i % 5 == 4 else frame
        words.append(Word(token, start * FRAME_S, (frame + n) * FRAME_S, 0.5 + 0.4 * (i % 2)))
        frame += n
    token_times = [w.start_s for w in words]
    return Transcript(text=text, language="en", language_detected=True, words=words if with_words else [],
                      token_ids=[7] + list(range(100, 100 + len(words))),
                      token_times_s=[0.0] + token_times, duration_s=frame * FRAME_S + 0.5)


CUE = re.compile(r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)")


def parse_cues(body: str, srt: bool) -> list[tuple[float, float, str]]:
    cues = []
    for block in body.strip().split("\n\n"):
        lines = block.split("\n")
        if srt:
            assert lines.pop(0) == str(len(cues) + 1)
        m = CUE.fullmatch(lines[0])
        assert m, lines[0]
        g = [int(x) for x in m.groups()]
        cues.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000,
                     g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000, "\n".join(lines[1:])))
    return cues


def check_cues(cues, t: Transcript) -> None:
    assert cues
    prev_end = 0.0
    for start, end, text in cues:
        assert prev_end <= start < end
        assert text and "\n" not in text
        prev_end = end
    assert "".join(c[2] for c in cues).replace(" ", "") == t.text.replace(" ", "")


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_captions_parse_and_keep_text(fmt):
    t = make_transcript()
    out = format_transcript(t, fmt)
    if fmt == "vtt":
        assert out.startswith("WEBVTT\n\n")
        assert "R&amp;D &lt;tags&gt;" in out  # cue text is markup in WebVTT
        out = html.unescape(out[len("WEBVTT\n\n"):])
    else:
        assert "," in out.split("\n")[1] and "R&D <tags>" in out
    cues = parse_cues(out, srt=fmt == "srt")
    check_cues(cues, t)
    assert len(cues) >= 6
    for start, end, text in cues:
        assert len(text) <= MAX_CUE_CHARS or " " not in text
        assert end - start <= MAX_CUE_S + 1
    texts = [c[2] for c in cues]
    assert texts[0] == "Hello world."  # sentence end splits
    assert any(x.endswith("runs on!") for x in texts) and any(x.endswith("work?") for x in texts)
    assert texts[-1] == "late word."  # the long pause splits


def test_captions_without_words_span_duration():
    t = make_transcript(with_words=False)
    for fmt in ("srt", "vtt"):
        out = format_transcript(t, fmt)
        body = out if fmt == "srt" else out[len("WEBVTT\n\n"):]
        [(start, end, text)] = parse_cues(html.unescape(body), srt=fmt == "srt")
        assert start == 0 and end == pytest.approx(t.duration_s, abs=1e-3) and text == t.text
    empty = make_transcript("", with_words=False)
    assert format_transcript(empty, "srt") == "" and format_transcript(empty, "vtt") == "WEBVTT\n\n"


def test_cue_times_are_clamped_and_nonoverlapping():
    words = [Word("a", 1.0, 1.0, 1.0), Word("b.", 0.9, 1.2, 1.0), Word("c", 1.1, 1.3, 1.0)]
    t = Transcript("a b. c", None, False, words, [], [], 2.0)
    cues = make_cues(t)
    assert [c.text for c in cues] == ["a b.", "c"]
    assert cues[0].start_s == 1.0 and cues[1].start_s == cues[0].end_s == 1.2


def test_json_round_trip():
    t = make_transcript()
    d = json.loads(format_transcript(t, "json", path_hint="talk.wav"))
    assert d["file"] == "talk.wav" and d == {"file": "talk.wav", **t.to_dict()}
    assert d["words"][0] == {"word": "Hello", "start": t.words[0].start_s, "end": t.words[0].end_s,
                             "confidence": t.words[0].confidence}
    back = Transcript(**{k: v for k, v in d.items() if k not in ("file", "words", "duration")},
                      words=[Word(w["word"], w["start"], w["end"], w["confidence"]) for w in d["words"]],
                      duration_s=d["duration"])
    assert back == t
    assert "file" not in json.loads(format_transcript(t, "json"))


def test_verbose_json_has_words_and_segments():
    t = make_transcript()
    d = json.loads(format_transcript(t, "verbose_json"))
    assert d["task"] == "transcribe" and d["language"] == "en" and d["text"] == t.text
    assert d["duration"] == t.duration_s
    assert [w["word"] for w in d["words"]] == [w.word for w in t.words]
    assert all(set(w) == {"word", "start", "end"} for w in d["words"])
    segs = d["segments"]
    assert [s["id"] for s in segs] == list(range(len(segs))) and len(segs) == len(make_cues(t))
    assert " ".join(s["text"] for s in segs) == t.text
    assert [tok for s in segs for tok in s["tokens"]] == t.token_ids  # every token, once, in order
    assert segs[0]["tokens"][0] == 7  # the leading language tag joins the first segment
    for s in segs:
        assert s["start"] < s["end"] and s["avg_logprob"] <= 0 and s["temperature"] == 0.0


def test_txt_and_unknown_format():
    t = make_transcript()
    assert format_transcript(t, "txt") == TEXT + "\n"
    with pytest.raises(OnePassError, match="srt"):
        format_transcript(t, "docx")


def test_output_path():
    assert output_path("/data/talk.final.mp3", "srt", "out") == Path("out/talk.final.srt")
    assert output_path("talk.wav", "verbose_json", "/tmp") == Path("/tmp/talk.json")
    assert {output_path("a.wav", f, ".").suffix for f in FORMATS} == {".txt", ".json", ".srt", ".vtt"}
    with pytest.raises(OnePassError):
        output_path("a.wav", "pdf", ".")


def test_slow_speech_splits_at_max_cue_duration():
    words = [Word(f"w{i}", 2.0 * i, 2.0 * i + 1.9, 1.0) for i in range(10)]  # one word per 2 s
    t = Transcript(" ".join(w.word for w in words), None, False, words, [], [], 20.0)
    cues = make_cues(t)
    assert len(cues) > 1 and all(c.end_s - c.start_s <= MAX_CUE_S for c in cues)
    assert " ".join(c.text for c in cues) == t.text
