"""`SinkSpec`: one caption destination as a client describes it, validated once, without I/O.

A sink's URL (and a webhook's secret) is a credential: `masked_url` is the only form that may be logged,
shown in status or sent to anyone; `SinkSpec.__repr__` hides both.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

KINDS = ("zoom", "youtube", "webhook")
MAX_SINKS = 8
"""Sinks per session (start message or HTTP API)."""
MAX_URL_CHARS = 2048
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256
SINK_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LANGUAGE_PATTERN = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
DEFAULT_ZOOM_LANGUAGE = "en-US"
DEFAULT_PARTIAL_INTERVAL = 2.0
MIN_PARTIAL_INTERVAL = 1.0
MAX_PARTIAL_INTERVAL = 60.0
"""Bounds of ``partial_interval``: at most one partial caption a second, at least one a minute."""
_FIELDS = {"kind", "url", "id", "lang", "secret", "partials", "partial_interval"}


class InvalidSinkSpec(ValueError):
    """A sink description a client sent is not valid; the message never contains the URL or secret."""


@dataclass(frozen=True, slots=True)
class SinkSpec:
    kind: str
    url: str = field(repr=False)
    id: str
    lang: str = DEFAULT_ZOOM_LANGUAGE
    """Zoom only: the caption language sent as ``&lang=``."""
    secret: str | None = field(default=None, repr=False)
    """Webhook only: the HMAC-SHA256 key of the ``X-Streamer-Signature`` header."""
    partials: bool = False
    """Zoom only: also post the live utterance's not-yet-final words as captions."""
    partial_interval: float = DEFAULT_PARTIAL_INTERVAL
    """Zoom only: the fewest seconds between two partial captions."""

    @property
    def target(self) -> str:
        return masked_url(self.url)

    def to_json(self) -> dict[str, Any]:
        """What a client sends (URL and secret included): for clients building start messages only."""
        data: dict[str, Any] = {"kind": self.kind, "url": self.url, "id": self.id}
        if self.kind == "zoom":
            data["lang"] = self.lang
            data.update(self._partial_options())
        if self.secret is not None:
            data["secret"] = self.secret
        return data

    def public(self) -> dict[str, Any]:
        """The spec with the URL masked and no secret: safe for status, logs and API answers."""
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "target": self.target}
        if self.kind == "zoom":
            data["lang"] = self.lang
            data.update(self._partial_options())
        return data

    def _partial_options(self) -> dict[str, Any]:
        return {"partials": True, "partial_interval": self.partial_interval} if self.partials else {}


def masked_url(url: str) -> str:
    """``scheme://host/…``: enough to tell destinations apart, nothing of the token, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}/…"


def default_sink_id(kind: str, url: str) -> str:
    """A stable id for a destination (a new Zoom meeting URL is a new sink with its own seq)."""
    return f"{kind}-{hashlib.sha256(f'{kind} {url}'.encode()).hexdigest()[:12]}"


def _string(data: dict[str, Any], key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidSinkSpec(f"sink {key} must be a non-empty string of at most {limit} characters")
    return value.strip()


def _url(data: dict[str, Any]) -> str:
    url = _string(data, "url", MAX_URL_CHARS)
    if url is None:
        raise InvalidSinkSpec("a sink needs a url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InvalidSinkSpec("sink url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSinkSpec("sink url must be an http:// or https:// URL with a host")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidSinkSpec("sink url must not contain spaces or control characters")
    return url


def parse_sink_spec(data: object) -> SinkSpec:
    """One sink from its JSON object; raises `InvalidSinkSpec`."""
    if not isinstance(data, dict):
        raise InvalidSinkSpec("a sink must be a JSON object")
    unknown = set(data) - _FIELDS
    if unknown:
        raise InvalidSinkSpec(f"unknown sink field(s): {', '.join(sorted(unknown))}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise InvalidSinkSpec(f"sink kind must be one of {', '.join(KINDS)}")
    url = _url(data)
    sink_id = _string(data, "id", 64)
    if sink_id is not None and not SINK_ID_PATTERN.match(sink_id):
        raise InvalidSinkSpec("sink id must be 1-64 characters of letters, digits, '_', '.', '-'")
    lang = _string(data, "lang", 35) or DEFAULT_ZOOM_LANGUAGE
    if not LANGUAGE_PATTERN.match(lang):
        raise InvalidSinkSpec("sink lang must be a language tag such as en-US")
    secret = _string(data, "secret", MAX_SECRET_CHARS)
    if kind == "webhook":
        if secret is None or len(secret) < MIN_SECRET_CHARS:
            raise InvalidSinkSpec(f"a webhook sink needs a secret of at least {MIN_SECRET_CHARS} characters")
    elif secret is not None:
        raise InvalidSinkSpec("only webhook sinks take a secret")
    partials, interval = _partial_options(data, kind)
    return SinkSpec(
        kind=kind,
        url=url,
        id=sink_id or default_sink_id(kind, url),
        lang=lang,
        secret=secret,
        partials=partials,
        partial_interval=interval,
    )


def _partial_options(data: dict[str, Any], kind: str) -> tuple[bool, float]:
    partials = data.get("partials", False)
    interval = data.get("partial_interval", DEFAULT_PARTIAL_INTERVAL)
    if not isinstance(partials, bool):
        raise InvalidSinkSpec("sink partials must be true or false")
    if kind != "zoom" and (partials or "partial_interval" in data):
        raise InvalidSinkSpec("only zoom sinks forward partial captions")
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not MIN_PARTIAL_INTERVAL <= interval <= MAX_PARTIAL_INTERVAL
    ):
        raise InvalidSinkSpec(
            f"sink partial_interval must be {MIN_PARTIAL_INTERVAL:g} to {MAX_PARTIAL_INTERVAL:g} seconds"
        )
    return partials, float(interval)


def parse_sink_specs(data: object) -> tuple[SinkSpec, ...]:
    """A list of sinks (the start message's ``sinks``); ids must be unique."""
    if not isinstance(data, list):
        raise InvalidSinkSpec("sinks must be a list of objects")
    if len(data) > MAX_SINKS:
        raise InvalidSinkSpec(f"at most {MAX_SINKS} sinks per session")
    specs = tuple(parse_sink_spec(item) for item in data)
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        raise InvalidSinkSpec("sink ids must be unique (the same destination twice?)")
    return specs
