"""`ServerContext`: the shared, long-lived parts every connection handler and route uses.

It holds no per-session state: that lives in the rooms of the `Registry`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from streamer.engines.base import SpeechDetector
from streamer.server.errors import TooManyConnections
from streamer.server.metrics import Metrics
from streamer.server.rooms import Registry
from streamer.server.scheduler import InferenceScheduler
from streamer.server.settings import ServerConfig


@dataclass(slots=True)
class ServerContext:
    config: ServerConfig
    registry: Registry
    scheduler: InferenceScheduler
    detector: SpeechDetector
    metrics: Metrics
    model_name: str
    started: float = field(default_factory=time.time)
    accepting: bool = True
    connections: Counter[str] = field(default_factory=Counter)
    """Open websocket connections per remote address."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a graceful shutdown begins: speakers finish their sessions."""

    def connect(self, address: str) -> None:
        """Counts a connection from `address`; raises `TooManyConnections` past the limit."""
        if self.connections[address] >= self.config.max_connections_per_address:
            raise TooManyConnections(
                f"too many connections from {address} (limit {self.config.max_connections_per_address})"
            )
        self.connections[address] += 1

    def disconnect(self, address: str) -> None:
        self.connections[address] -= 1
        if self.connections[address] <= 0:
            del self.connections[address]
