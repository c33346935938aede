"""Rendering of a transcript (a sequence of finals) as Markdown, SRT, WebVTT, plain text or JSON.

Pure: every function takes finals and the `TranscriptConfig` and returns the document as a string; reading
the journal and sending the bytes belong to the caller. Each format renders an empty transcript as a valid
document (an empty SRT, a bare ``WEBVTT`` header, Markdown with its headings, JSON with no finals).

The Markdown follows the community transcript format (shared/reference/transcript-format.md): ``# Title``,
an optional ``## Key Links`` list, ``## Transcript``, then the paragraphs of `streamer.core.paragraphs`
wrapped at `line_width`, each paragraph after the first preceded by its marker line
``HH:MM:SS,mmm:: N minutes mark -> new paragraph``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from streamer.config import TranscriptConfig
from streamer.core.captions import Cue, cues
from streamer.core.paragraphs import Paragraph, format_mark_minutes, paragraphs
from streamer.core.timefmt import format_srt_time, format_vtt_time
from streamer.events import Final

JSON_FORMAT_NAME = "streamer-transcript"
JSON_FORMAT_VERSION = 1

MEDIA_TYPES: Mapping[str, str] = {
    "md": "text/markdown; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
}
"""Export format -> the HTTP content type of its document."""

Links = Mapping[str, str] | Sequence[tuple[str, str]]
"""Key links of the Markdown header: label -> link or name, e.g. ``{"Video": url, "Transcriber": name}``."""


def _wrap(text: str, width: int) -> str:
    return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)


def marker_line(paragraph: Paragraph) -> str:
    """``00:04:03,110:: 4 minutes mark -> new paragraph`` for a paragraph that opens at a mark."""
    if paragraph.mark_minutes is None or paragraph.mark_time is None:
        raise ValueError("the paragraph does not open at a mark")
    minutes = format_mark_minutes(paragraph.mark_minutes)
    return f"{format_srt_time(paragraph.mark_time)}:: {minutes} minutes mark -> new paragraph"


def to_markdown(
    finals: Iterable[Final],
    config: TranscriptConfig | None = None,
    *,
    title: str | None = None,
    links: Links | None = None,
) -> str:
    """The paragraphed Markdown transcript; `title` defaults to ``config.title``."""
    config = config or TranscriptConfig()
    blocks = [f"# {title if title is not None else config.title}"]
    link_items = list(links.items() if isinstance(links, Mapping) else links or ())
    if link_items:
        blocks.append("\n".join(["## Key Links", *(f"- {label}: {value}" for label, value in link_items)]))
    blocks.append("## Transcript")
    for paragraph in paragraphs(finals, config.paragraph_minutes):
        if paragraph.mark_minutes is not None:
            blocks.append(marker_line(paragraph))
        if paragraph.text:
            blocks.append(_wrap(paragraph.text, config.line_width))
    return "\n\n".join(blocks) + "\n"


def to_txt(finals: Iterable[Final], config: TranscriptConfig | None = None) -> str:
    """Plain text: one wrapped block per paragraph, blank lines between, no markers."""
    config = config or TranscriptConfig()
    texts = [p.text for p in paragraphs(finals, config.paragraph_minutes) if p.text]
    blocks = [_wrap(text, config.line_width) for text in texts]
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _cue_blocks(cue_list: list[Cue], format_time: Callable[[float], str]) -> list[str]:
    return [f"{c.index}\n{format_time(c.start)} --> {format_time(c.end)}\n{c.text}" for c in cue_list]


def to_srt(finals: Iterable[Final], config: TranscriptConfig | None = None) -> str:
    """SubRip subtitles; an empty transcript gives an empty document."""
    blocks = _cue_blocks(cues(finals, config), format_srt_time)
    return "\n\n".join(blocks) + "\n" if blocks else ""


def to_vtt(finals: Iterable[Final], config: TranscriptConfig | None = None) -> str:
    """WebVTT subtitles (cue identifiers are the cue numbers); an empty transcript gives the header only."""
    blocks = _cue_blocks(cues(finals, config), format_vtt_time)
    return "\n\n".join(["WEBVTT", *blocks]) + "\n"


def _paragraph_json(paragraph: Paragraph) -> dict[str, Any]:
    return {
        "mark_minutes": paragraph.mark_minutes,
        "mark_time": None if paragraph.mark_time is None else round(paragraph.mark_time, 3),
        "start": round(paragraph.start, 3),
        "end": round(paragraph.end, 3),
        "final_indexes": [f.index for f in paragraph.finals],
        "text": paragraph.text,
    }


def to_json(
    finals: Iterable[Final],
    config: TranscriptConfig | None = None,
    *,
    title: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """JSON: format metadata, every final as `Final.to_json()` gives it, and the paragraphs.

    `metadata` (JSON-serialisable; e.g. a room name or the event's wall-clock start, which this pure module
    cannot know) is stored under ``"metadata"``.
    """
    config = config or TranscriptConfig()
    final_list = list(finals)
    document = {
        "format": JSON_FORMAT_NAME,
        "version": JSON_FORMAT_VERSION,
        "title": title if title is not None else config.title,
        "paragraph_minutes": config.paragraph_minutes,
        "duration": round(max((f.end for f in final_list), default=0.0), 3),
        "metadata": dict(metadata or {}),
        "finals": [f.to_json() for f in final_list],
        "paragraphs": [_paragraph_json(p) for p in paragraphs(final_list, config.paragraph_minutes)],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def render(
    fmt: str,
    finals: Iterable[Final],
    config: TranscriptConfig | None = None,
    *,
    title: str | None = None,
    links: Links | None = None,
) -> str:
    """Renders `finals` as `fmt`, one of `MEDIA_TYPES`' keys; `title` applies to md and json, `links` to md.

    Raises `ValueError` for an unknown format.
    """
    if fmt == "md":
        return to_markdown(finals, config, title=title, links=links)
    if fmt == "srt":
        return to_srt(finals, config)
    if fmt == "vtt":
        return to_vtt(finals, config)
    if fmt == "txt":
        return to_txt(finals, config)
    if fmt == "json":
        return to_json(finals, config, title=title)
    raise ValueError(f"unknown transcript format {fmt!r}; expected one of {', '.join(MEDIA_TYPES)}")
