"""Transcript exports (streamer.storage.exports): Markdown, SRT, WebVTT, plain text and JSON."""

from __future__ import annotations

import json
import random
import re

import pytest

from streamer.config import TranscriptConfig
from streamer.core.paragraphs import paragraphs
from streamer.events import Final, Word, join_words
from streamer.storage.exports import (
    MEDIA_TYPES,
    render,
    to_json,
    to_markdown,
    to_srt,
    to_txt,
    to_vtt,
)

CONFIG = TranscriptConfig()
VOCAB = ("the", "scheduler", "hands", "tasks", "to", "workers", "and", "why", "that", "matters", "memory,")
MARKER = re.compile(r"^(\d{2}):(\d{2}):(\d{2}),(\d{3}):: (\d+) minutes mark -> new paragraph$")
SRT_TIMES = re.compile(r"^(\d{2}:\d{2}:\d{2},\d{3}) --> (\d{2}:\d{2}:\d{2},\d{3})$")
VTT_TIMES = re.compile(r"^(\d{2}:\d{2}:\d{2}\.\d{3}) --> (\d{2}:\d{2}:\d{2}\.\d{3})$")


def synthetic_finals(total_seconds: float = 68 * 60, seed: int = 3) -> list[Final]:
    """A final every ~7 s (times in whole milliseconds); sentence ends every 3rd, new utterance every 5th."""
    rng = random.Random(seed)
    finals: list[Final] = []
    t = 0.0
    utterance = 0
    while t < total_seconds:
        index = len(finals)
        if index % 5 == 0:
            utterance += 1
        words: list[Word] = []
        wt = t
        while wt < t + 5.0:
            duration = rng.uniform(0.15, 0.35)
            words.append(
                Word(round(wt, 3), round(wt + duration, 3), rng.choice(VOCAB), round(rng.random(), 3))
            )
            wt += duration + 0.05
        if index % 3 == 2:
            last = words[-1]
            words[-1] = Word(last.start, last.end, last.text.rstrip(",") + ".", last.probability)
        finals.append(Final(index, utterance, words[0].start, words[-1].end, join_words(words), tuple(words)))
        t += 7.0 + rng.uniform(-1.0, 1.0)
    return finals


def srt_seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.replace(".", ",").split(":")
    seconds, millis = rest.split(",")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def body_blocks(markdown: str) -> list[str]:
    return markdown.split("## Transcript\n\n", 1)[1].rstrip("\n").split("\n\n")


def test_markdown_structure_small() -> None:
    finals = [
        Final(0, 1, 1.0, 3.0, "Hello and welcome."),
        Final(1, 1, 3.5, 6.0, "Today we look at the scheduler."),
        Final(2, 2, 243.11, 246.0, "OK, now the cluster is up."),
        Final(3, 2, 246.5, 249.0, "Let's look at the dashboard."),
    ]
    md = to_markdown(
        finals, CONFIG, title="Jane Doe: Scheduling", links={"Video": "https://v", "Transcriber": "Ann"}
    )
    assert md == (
        "# Jane Doe: Scheduling\n"
        "\n"
        "## Key Links\n"
        "- Video: https://v\n"
        "- Transcriber: Ann\n"
        "\n"
        "## Transcript\n"
        "\n"
        "Hello and welcome. Today we look at the scheduler.\n"
        "\n"
        "00:04:03,110:: 4 minutes mark -> new paragraph\n"
        "\n"
        "OK, now the cluster is up. Let's look at the dashboard.\n"
    )


def test_markdown_default_title_and_no_links_section() -> None:
    md = to_markdown([Final(0, 1, 0.0, 1.0, "Hi.")], TranscriptConfig(title="Weekly call"))
    assert md == "# Weekly call\n\n## Transcript\n\nHi.\n"
    assert "## Key Links" not in to_markdown([], CONFIG, links=[])


def test_markdown_68_minutes_marks_and_wrapping() -> None:
    finals = synthetic_finals()
    md = to_markdown(finals, CONFIG, title="Talk")
    lines = md.splitlines()
    assert all(len(line) <= 110 for line in lines)
    assert max(len(line) for line in lines) > 100  # the wrapping fills the width, not just under it

    markers = [m for line in lines if (m := MARKER.match(line))]
    assert [int(m.group(5)) for m in markers] == list(range(4, 65, 4))
    assert "60 minutes mark" in md and "56 minutes mark" in md and "64 minutes mark" in md
    expected = paragraphs(finals, CONFIG.paragraph_minutes)[1:]
    for match, paragraph in zip(markers, expected, strict=True):
        hours, minutes, seconds, millis = (int(g) for g in match.groups()[:4])
        marker_time = hours * 3600 + minutes * 60 + seconds + millis / 1000
        assert marker_time == pytest.approx(paragraph.finals[0].start, abs=5e-4)
        assert marker_time >= int(match.group(5)) * 60
    assert any(m.group(1) == "01" and m.group(5) == "60" for m in markers)

    # Body: paragraph, then marker + paragraph for each mark; reflowed text equals the joined finals.
    blocks = body_blocks(md)
    assert len(blocks) == 1 + 2 * len(markers)
    texts = [blocks[0], *blocks[2::2]]
    assert [t.replace("\n", " ") for t in texts] == [p.text for p in paragraphs(finals, 4)]
    assert " ".join(texts).replace("\n", " ") == " ".join(f.text for f in finals)


def test_markdown_wraps_without_breaking_words() -> None:
    long_word = "https://example.org/" + "a" * 120
    finals = [Final(0, 1, 0.0, 60.0, " ".join(["well-known"] * 30) + " " + long_word + " end.")]
    body = body_blocks(to_markdown(finals, CONFIG))[0].splitlines()
    assert long_word in body
    assert all(len(line) <= 110 for line in body if line != long_word)
    assert all(not line.endswith("-") for line in body)


def test_txt_paragraphs_without_markers() -> None:
    finals = synthetic_finals(20 * 60)
    txt = to_txt(finals, CONFIG)
    blocks = txt.rstrip("\n").split("\n\n")
    assert len(blocks) == len(paragraphs(finals, 4)) == 5
    assert "minutes mark" not in txt
    assert all(len(line) <= 110 for line in txt.splitlines())
    assert txt.endswith("\n") and not txt.endswith("\n\n")
    assert " ".join(blocks).replace("\n", " ") == " ".join(f.text for f in finals)


def parse_cues(document: str, times: re.Pattern[str]) -> list[tuple[float, float, list[str]]]:
    result: list[tuple[float, float, list[str]]] = []
    for block in document.strip("\n").split("\n\n"):
        index, timing, *lines = block.split("\n")
        assert index == str(len(result) + 1)
        match = times.match(timing)
        assert match is not None, timing
        result.append((srt_seconds(match.group(1)), srt_seconds(match.group(2)), lines))
    return result


def test_srt_document() -> None:
    finals = synthetic_finals()
    srt = to_srt(finals, CONFIG)
    assert srt.endswith("\n") and not srt.endswith("\n\n")
    parsed = parse_cues(srt, SRT_TIMES)
    assert len(parsed) > 400
    for start, end, lines in parsed:
        assert 1 <= len(lines) <= 2
        assert all(0 < len(line) <= 42 for line in lines)
        assert start <= end and end - start <= CONFIG.caption_max_duration + 1e-3
    assert all(a[1] <= b[0] for a, b in zip(parsed, parsed[1:], strict=False))
    words = [w for _, _, lines in parsed for line in lines for w in line.split(" ")]
    assert words == [w.text for f in finals for w in f.words]
    assert parsed[-1][0] > 3600


def test_vtt_document() -> None:
    finals = synthetic_finals(5 * 60)
    vtt = to_vtt(finals, CONFIG)
    assert vtt.startswith("WEBVTT\n\n1\n")
    parsed = parse_cues(vtt.removeprefix("WEBVTT\n\n"), VTT_TIMES)
    srt_parsed = parse_cues(to_srt(finals, CONFIG), SRT_TIMES)
    assert parsed == srt_parsed


def test_empty_transcript_renders_valid_documents() -> None:
    assert to_markdown([], CONFIG) == "# Transcript\n\n## Transcript\n"
    assert to_srt([], CONFIG) == ""
    assert to_vtt([], CONFIG) == "WEBVTT\n"
    assert to_txt([], CONFIG) == ""
    document = json.loads(to_json([], CONFIG))
    assert document["finals"] == [] and document["paragraphs"] == [] and document["duration"] == 0


def test_json_round_trips_finals_and_lists_paragraphs() -> None:
    finals = synthetic_finals()
    document = json.loads(to_json(finals, CONFIG, title="Talk", metadata={"room": "main"}))
    assert document["format"] == "streamer-transcript" and document["version"] == 1
    assert document["title"] == "Talk" and document["metadata"] == {"room": "main"}
    assert document["paragraph_minutes"] == 4
    assert document["duration"] == finals[-1].end
    assert [Final.from_json(item) for item in document["finals"]] == finals
    assert [item["index"] for item in document["finals"]] == list(range(len(finals)))
    assert [p["mark_minutes"] for p in document["paragraphs"]] == [None, *range(4, 65, 4)]
    expected = paragraphs(finals, 4)
    assert [p["final_indexes"] for p in document["paragraphs"]] == [
        [f.index for f in p.finals] for p in expected
    ]
    assert [p["mark_time"] for p in document["paragraphs"]] == [p.mark_time for p in expected]
    assert [p["text"] for p in document["paragraphs"]] == [p.text for p in expected]


def test_json_keeps_unicode_text() -> None:
    finals = [Final(0, 1, 0.0, 1.5, "Ça marche — très bien…", (Word(0.0, 1.5, "Ça"),))]
    text = to_json(finals, CONFIG)
    assert "Ça marche — très bien…" in text
    assert Final.from_json(json.loads(text)["finals"][0]) == finals[0]


def test_render_dispatches_every_format() -> None:
    finals = synthetic_finals(9 * 60)
    assert set(MEDIA_TYPES) == {"md", "srt", "vtt", "txt", "json"}
    assert MEDIA_TYPES["vtt"].startswith("text/vtt") and MEDIA_TYPES["json"] == "application/json"
    assert render("md", finals, CONFIG, title="T", links={"Video": "v"}) == to_markdown(
        finals, CONFIG, title="T", links={"Video": "v"}
    )
    assert render("srt", finals, CONFIG) == to_srt(finals, CONFIG)
    assert render("vtt", finals, CONFIG) == to_vtt(finals, CONFIG)
    assert render("txt", finals, CONFIG) == to_txt(finals, CONFIG)
    assert render("json", finals, CONFIG, title="T") == to_json(finals, CONFIG, title="T")
    assert render("srt", iter(finals), CONFIG) == to_srt(finals, CONFIG)
    with pytest.raises(ValueError, match="unknown transcript format"):
        render("docx", finals, CONFIG)


def test_config_paragraph_minutes_and_line_width_are_used() -> None:
    finals = synthetic_finals(12 * 60)
    config = TranscriptConfig(paragraph_minutes=5, line_width=60)
    md = to_markdown(finals, config)
    assert [int(m.group(5)) for line in md.splitlines() if (m := MARKER.match(line))] == [5, 10]
    assert all(len(line) <= 60 for line in md.splitlines())
