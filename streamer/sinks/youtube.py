"""YouTube Live's HTTP caption ingestion ("POST captions to URL").

Each final is one POST to the ingestion URL with ``&seq=N`` appended; the ``text/plain`` body is the
caption's start on the wall clock (UTC, ``YYYY-MM-DDTHH:MM:SS.mmm``) on one line and its text on the next.
The wall-clock start is the session's clock origin (wall time of audio time 0) plus ``final.start``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from streamer.events import Final
from streamer.sinks.base import HttpRequest, Sink
from streamer.sinks.zoom import caption_text, with_params

CONTENT_TYPE = "text/plain; charset=utf-8"


def timestamp(epoch_seconds: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmm`` in UTC, as YouTube's caption ingestion wants it."""
    moment = datetime.fromtimestamp(round(epoch_seconds, 3), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def caption_body(final: Final, clock_origin: float) -> bytes:
    return f"{timestamp(clock_origin + final.start)}\n{caption_text(final)}\n".encode()


class YouTubeSink(Sink):
    kind = "youtube"

    def request(self, final: Final, seq: int) -> HttpRequest:
        return HttpRequest(
            "POST",
            with_params(self.spec.url, {"seq": seq}),
            (("Content-Type", CONTENT_TYPE),),
            caption_body(final, self.clock_origin),
        )
