"""A generic signed webhook: one JSON POST per final.

Body: ``{"type": "final", "session": ID, "sink": SINK_ID, "seq": N, "timestamp": UNIX_SECONDS,
**Final.to_json()}``. Headers: ``X-Streamer-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with
the sink's secret>``, ``X-Streamer-Timestamp`` (the same Unix time as the body's ``timestamp``: it is signed
there, so receivers can refuse stale replays) and ``X-Streamer-Delivery: SESSION/SINK/SEQ`` (idempotency key:
a retry repeats it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from streamer.events import Final
from streamer.sinks.base import HttpRequest, Sink

SIGNATURE_HEADER = "X-Streamer-Signature"
TIMESTAMP_HEADER = "X-Streamer-Timestamp"
DELIVERY_HEADER = "X-Streamer-Delivery"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: constant-time comparison of the header with the body's HMAC."""
    return hmac.compare_digest(signature(secret, body), header)


class WebhookSink(Sink):
    kind = "webhook"

    def request(self, final: Final, seq: int) -> HttpRequest:
        assert self.spec.secret is not None  # parse_sink_spec requires one
        now = round(time.time(), 3)
        payload = {
            "type": "final",
            "session": self.session_id,
            "sink": self.spec.id,
            "seq": seq,
            "timestamp": now,
            **final.to_json(),
        }
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return HttpRequest(
            "POST",
            self.spec.url,
            (
                ("Content-Type", "application/json"),
                (SIGNATURE_HEADER, signature(self.spec.secret, body)),
                (TIMESTAMP_HEADER, f"{now:.3f}"),
                (DELIVERY_HEADER, f"{self.session_id}/{self.spec.id}/{seq}"),
            ),
            body,
        )
