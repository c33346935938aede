"""Formatting of stream times (seconds on the sample clock) as subtitle timestamps.

Owns the two timestamp styles the exports use: SRT's ``HH:MM:SS,mmm`` and WebVTT's ``HH:MM:SS.mmm``.
Times are rounded to the nearest millisecond; hours are not capped at 99 and negative times clamp to zero.
"""

from __future__ import annotations

MS_PER_SECOND = 1000
MS_PER_MINUTE = 60 * MS_PER_SECOND
MS_PER_HOUR = 60 * MS_PER_MINUTE


def _format(seconds: float, separator: str) -> str:
    total_ms = max(0, round(seconds * MS_PER_SECOND))
    hours, rest = divmod(total_ms, MS_PER_HOUR)
    minutes, rest = divmod(rest, MS_PER_MINUTE)
    secs, millis = divmod(rest, MS_PER_SECOND)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def format_srt_time(seconds: float) -> str:
    """``3603.11`` -> ``"01:00:03,110"`` (the SRT style, also used by the Markdown paragraph markers)."""
    return _format(seconds, ",")


def format_vtt_time(seconds: float) -> str:
    """``3603.11`` -> ``"01:00:03.110"`` (the WebVTT style)."""
    return _format(seconds, ".")
