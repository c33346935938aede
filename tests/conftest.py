"""Shared test fixtures: the evaluation recordings, their references, the real model and VAD, and scoring.

The recordings live in `../shared/evaldata` beside the repository (or where STREAMER_EVALDATA points).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EVALDATA = Path(os.environ.get("STREAMER_EVALDATA", REPO.parent / "shared" / "evaldata"))


@dataclass(frozen=True)
class Recording:
    id: str
    kind: str
    audio: Path
    duration: float
    reference_path: Path

    @property
    def reference(self) -> str:
        """The spoken-form reference where one exists, else the original text."""
        return " ".join(self.reference_path.read_text(encoding="utf-8").split())


def load_manifest() -> dict[str, Recording]:
    manifest = EVALDATA / "manifest.tsv"
    if not manifest.exists():
        return {}
    recordings = {}
    with manifest.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            ref = row.get("spoken_reference_file") or row["reference_file"]
            recordings[row["id"]] = Recording(
                id=row["id"],
                kind=row["kind"],
                audio=EVALDATA / row["audio_file"],
                duration=float(row["duration_s"]),
                reference_path=EVALDATA / ref,
            )
    return recordings


RECORDINGS = load_manifest()


@pytest.fixture(scope="session")
def recordings() -> dict[str, Recording]:
    if not RECORDINGS:
        pytest.fail(f"evaluation data not found at {EVALDATA} (set STREAMER_EVALDATA)")
    return RECORDINGS


@pytest.fixture(scope="session")
def transcriber():
    from streamer.engines.whisper import WhisperTranscriber

    return WhisperTranscriber()


@pytest.fixture(scope="session")
def detector():
    from streamer.engines.silero import SileroVad

    return SileroVad()
