"""Zoom's closed-caption REST API ("third-party closed captioning" / the meeting's API token URL).

Each final is POSTed as ``text/plain; charset=utf-8`` to the caption URL the host copied, with
``&seq=N&lang=xx-XX`` appended (``?`` when the URL has no query). Zoom answers 400 until the meeting has
started; `Sink` retries that like any other failure. The last seq Zoom accepted is read back from the same
URL with the path's trailing ``/closedcaption`` replaced by ``/closedcaption/seq`` (query kept), so a
restarted server continues numbering even without its stored state.

With ``"partials": true`` in the sink's spec, the words of the live utterance that are not final yet are
posted too, as captions of their own, at most every ``partial_interval`` seconds (see `Sink` for the
rules): Zoom shows each POST as the next caption, so a viewer sees the coming words early, then the final
that settles them; the finals before it already showed the utterance's committed words, which are therefore
not repeated. Partials and finals share one seq counter.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from streamer.events import Final
from streamer.sinks.base import HttpRequest, Sink

CAPTION_PATH = "/closedcaption"
SEQ_SUFFIX = "/seq"
CONTENT_TYPE = "text/plain; charset=utf-8"


def with_params(url: str, params: dict[str, str | int]) -> str:
    """`url` with `params` appended to its query (``?`` or ``&`` as needed)."""
    query = urlencode(params)
    if "?" not in url:
        return f"{url}?{query}"
    return f"{url}{'' if url.endswith(('?', '&')) else '&'}{query}"


def seq_url(caption_url: str) -> str | None:
    """The ``.../closedcaption/seq?...`` URL of a caption URL, or ``None`` if its path is not Zoom's."""
    parts = urlsplit(caption_url)
    path = parts.path.rstrip("/")
    if not path.endswith(CAPTION_PATH):
        return None
    return urlunsplit(parts._replace(path=path + SEQ_SUFFIX))


def caption_text(final: Final) -> str:
    return " ".join(final.text.split())


class ZoomSink(Sink):
    kind = "zoom"

    def request(self, final: Final, seq: int) -> HttpRequest:
        return self._post(caption_text(final), seq)

    def partial_request(self, text: str, seq: int) -> HttpRequest:
        return self._post(text, seq)

    def _post(self, text: str, seq: int) -> HttpRequest:
        return HttpRequest(
            "POST",
            with_params(self.spec.url, {"seq": seq, "lang": self.spec.lang}),
            (("Content-Type", CONTENT_TYPE),),
            text.encode("utf-8"),
        )

    async def remote_seq(self) -> int | None:
        url = seq_url(self.spec.url)
        if url is None:
            return None
        response = await self.transport.send(HttpRequest("GET", url))
        if not response.ok:
            return None
        return max(0, int(response.body.decode("ascii", "replace").strip()))
