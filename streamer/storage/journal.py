"""The durable transcript of a live session: an append-only JSONL journal of finals plus a small meta file.

Layout under the data folder: ``sessions/<id>/finals.jsonl`` (one `Final.to_json()` per line) and
``sessions/<id>/meta.json`` (`SessionMeta`). Synchronous file I/O; the server calls it from a worker thread.

Durability rules:
- `Journal.append` writes the line, flushes and fsyncs before it returns; the server sends a final to anyone
  only after that, so every final a client ever saw survives a crash or ``kill -9``.
- A crash can leave a torn last line (no newline, or not JSON). `load` ignores it, and opening the journal
  for appending truncates it away so the next line starts clean. A bad line in the middle is skipped with a
  warning (it cannot come from a crash; it means the file was edited).
- `write_meta` replaces the meta file atomically (write to a temporary file, fsync, rename).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from streamer.events import Final

logger = logging.getLogger(__name__)

FINALS_FILE = "finals.jsonl"
META_FILE = "meta.json"
SESSIONS_DIR = "sessions"
STATUS_LIVE = "live"
STATUS_ENDED = "ended"


@dataclass(frozen=True, slots=True)
class SessionMeta:
    """What the server knows about a session besides its finals."""

    id: str
    title: str
    created: float
    """Wall-clock creation time, seconds since the epoch."""
    status: str = STATUS_LIVE
    time: float = 0.0
    """Stream time of the audio received so far (where a resumed session continues)."""
    updated: float = 0.0
    language: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionMeta:
        return cls(
            id=str(data["id"]),
            title=str(data.get("title") or data["id"]),
            created=float(data.get("created", 0.0)),
            status=str(data.get("status", STATUS_ENDED)),
            time=float(data.get("time", 0.0)),
            updated=float(data.get("updated", 0.0)),
            language=data.get("language"),
        )

    def with_(self, **changes: Any) -> SessionMeta:
        return replace(self, updated=time.time(), **changes)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A journal as read from disk."""

    finals: tuple[Final, ...]
    good_bytes: int
    """Length of the file up to the end of the last good line."""
    torn: bool


def read_finals(path: Path) -> Loaded:
    """Every intact final in the file, in order; a torn tail (unterminated or unparseable lines after the
    last good one) is ignored and reported, so that `Journal.open` can cut it off."""
    if not path.exists():
        return Loaded((), 0, False)
    data = path.read_bytes()
    finals: list[Final] = []
    offset = good = 0
    bad_lines: list[int] = []
    for number, line in enumerate(data.split(b"\n")):
        end = offset + len(line) + 1
        terminated = end <= len(data)
        offset = end
        if not line.strip():
            if terminated and not bad_lines:
                good = end
            continue
        try:
            final = Final.from_json(json.loads(line)) if terminated else None
        except (ValueError, KeyError, TypeError):
            final = None
        if final is None:
            bad_lines.append(number + 1)
            continue
        if bad_lines:
            logger.warning("%s: skipping corrupt line(s) %s", path, bad_lines)
            bad_lines = []
        finals.append(final)
        good = end
    torn = good < len(data)
    if torn:
        logger.warning("%s: ignoring a torn tail of %d bytes", path, len(data) - good)
    return Loaded(tuple(finals), good, torn)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Journal:
    """One session's journal and meta file. Not thread-safe: one writer (the session's room) at a time."""

    def __init__(self, directory: Path, session_id: str) -> None:
        self.directory = directory
        self.session_id = session_id
        self.finals_path = directory / FINALS_FILE
        self.meta_path = directory / META_FILE
        self._file: BinaryIO | None = None

    def exists(self) -> bool:
        return self.meta_path.exists() or self.finals_path.exists()

    def load(self) -> tuple[Final, ...]:
        return read_finals(self.finals_path).finals

    def read_meta(self) -> SessionMeta | None:
        try:
            return SessionMeta.from_json(json.loads(self.meta_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            logger.warning("[%s] unreadable meta file %s", self.session_id, self.meta_path)
            return None

    def write_meta(self, meta: SessionMeta) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.meta_path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(meta.to_json(), fh, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.meta_path)
        _fsync_dir(self.directory)

    def open(self) -> tuple[Final, ...]:
        """Opens for appending (cutting a torn tail) and returns the finals already there."""
        self.directory.mkdir(parents=True, exist_ok=True)
        loaded = read_finals(self.finals_path)
        created = not self.finals_path.exists()
        fh = self.finals_path.open("ab")
        if loaded.torn:
            fh.truncate(loaded.good_bytes)
            fh.flush()
            os.fsync(fh.fileno())
        self._file = fh
        if created:
            _fsync_dir(self.directory)
        return loaded.finals

    def append(self, finals: Final | list[Final]) -> None:
        """Appends and fsyncs; when it returns the finals are on disk."""
        if self._file is None:
            raise RuntimeError("journal is not open")
        items = finals if isinstance(finals, list) else [finals]
        payload = b"".join(
            json.dumps(f.to_json(), ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for f in items
        )
        self._file.write(payload)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class JournalStore:
    """All sessions' journals under one data folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sessions_dir = root / SESSIONS_DIR

    def journal(self, session_id: str) -> Journal:
        return Journal(self.sessions_dir / session_id, session_id)

    def session_ids(self) -> list[str]:
        if not self.sessions_dir.is_dir():
            return []
        return sorted(p.name for p in self.sessions_dir.iterdir() if (p / META_FILE).exists())

    def mark_interrupted(self) -> list[str]:
        """At start-up: sessions left ``live`` by a crash are ``ended`` now (they can still be resumed)."""
        fixed = []
        for session_id in self.session_ids():
            journal = self.journal(session_id)
            meta = journal.read_meta()
            if meta is not None and meta.status == STATUS_LIVE:
                finals = journal.load()
                last = max((f.end for f in finals), default=0.0)
                journal.write_meta(meta.with_(status=STATUS_ENDED, time=max(meta.time, last)))
                fixed.append(session_id)
        return fixed
