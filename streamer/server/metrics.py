"""Counters, gauges and histograms in the Prometheus text format (no client library).

`Metrics` holds the counters the handlers bump; gauges that describe live state (sessions, viewers, queue
depth, per-session lag) are read from their owners when `/metrics` is rendered, so they are never stale.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DECODE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
"""Seconds; a decode costs at least one 30 s encoder pass (~0.3 s for tiny.en on 2 CPU cores)."""


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    escaped = (
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"'
        for k, v in sorted(labels.items())
    )
    return "{" + ",".join(escaped) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass(slots=True)
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out = []
        running = 0
        for bound, n in zip(self.buckets, self.counts, strict=True):
            running += n
            out.append(f'{name}_bucket{{le="{_number(bound)}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {_number(round(self.total, 6))}")
        out.append(f"{name}_count {self.count}")
        return out


@dataclass(slots=True)
class Metrics:
    """Process-wide counters. Mutated on the event loop only."""

    audio_seconds: float = 0.0
    finals: int = 0
    speakers_accepted: int = 0
    speakers_refused: dict[str, int] = field(default_factory=dict)
    viewers_accepted: int = 0
    viewer_messages_dropped: int = 0
    viewers_dropped_slow: int = 0
    connection_errors: dict[str, int] = field(default_factory=dict)

    def refuse_speaker(self, reason: str) -> None:
        self.speakers_refused[reason] = self.speakers_refused.get(reason, 0) + 1

    def connection_error(self, code: str) -> None:
        self.connection_errors[code] = self.connection_errors.get(code, 0) + 1


class Exposition:
    """Builds one Prometheus text document."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def metric(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]
    ) -> None:
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self._lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def single(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.metric(name, kind, help_text, [({}, value)])

    def histogram(self, name: str, help_text: str, histogram: Histogram) -> None:
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} histogram")
        self._lines.extend(histogram.lines(name))

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"
