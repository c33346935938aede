"""Tokens: optional, one for speakers and one for viewers, given as ``?token=`` or ``Authorization: Bearer``.

A speaker needs the speaker token (when one is set); a viewer needs the viewer token or the speaker token
(when a viewer token is set). A viewer token can never publish. Comparisons are constant-time.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request

from streamer.server.errors import Forbidden, Unauthorized
from streamer.server.settings import ServerConfig


def query_params(path: str) -> dict[str, str]:
    """The request's query parameters (the first value of each)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query, keep_blank_values=True).items()}


def request_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return query_params(request.path).get("token") or None


def _same(given: str | None, expected: str | None) -> bool:
    return (
        given is not None and expected is not None and hmac.compare_digest(given.encode(), expected.encode())
    )


def check_speaker(config: ServerConfig, token: str | None) -> None:
    if config.speaker_token is None:
        return
    if _same(token, config.speaker_token):
        return
    if _same(token, config.viewer_token):
        raise Forbidden("a viewer token cannot publish audio; use the speaker token")
    raise Unauthorized("missing or wrong speaker token")


def check_viewer(config: ServerConfig, token: str | None) -> None:
    if config.viewer_token is None:
        return
    if _same(token, config.viewer_token) or _same(token, config.speaker_token):
        return
    raise Unauthorized("missing or wrong viewer token")
