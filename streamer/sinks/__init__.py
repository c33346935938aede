"""Caption delivery sinks: forward a live session's finals to Zoom, YouTube Live or a signed webhook.

Zoom sinks may also show the live partial's not-yet-final words, at a limited rate.

- `spec`: what a sink is (kind, secret URL, options), parsed and validated without I/O;
- `base`: the delivery loop shared by every kind (bounded queue, seq numbering, retry with backoff, status);
- `zoom`, `youtube`, `webhook`: how each kind turns a final into an HTTP request;
- `manager`: the sinks of every session, attached to rooms, drained when a session ends.
"""
