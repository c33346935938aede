"""`streamer stream` and `streamer watch` against a real `streamer serve` subprocess on 127.0.0.1.

The live-device path (what `mic` uses) is exercised through FFmpeg's `lavfi` input reading a real recording
(`amovie=FILE`): the same code path as a microphone, minus the hardware.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import wer
from tests.test_server_crash import free_port, http_json, server_process


def caption_text(output: str) -> str:
    """The captions a command printed, without their `[start -> end]` times."""
    return " ".join(re.sub(r"^\[[^\]]*\]\s*", "", line) for line in output.splitlines())


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_stream_a_file_and_a_live_device_then_watch(recordings, tmp_path: Path) -> None:
    rec = recordings["jfk_inaugural_excerpt"]
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    with server_process(tmp_path / "data", port, tmp_path / "server.log"):
        from_file = run_cli("stream", str(rec.audio), "--url", url, "--session", "file", "--fast", "--quiet")
        assert from_file.returncode == 0, from_file.stderr
        assert wer(rec.reference, caption_text(from_file.stdout)) < 0.25, from_file.stdout

        device = f"amovie={rec.audio}"
        live = run_cli("stream", device, "--input-format", "lavfi", "--url", url, "--session", "live")
        assert live.returncode == 0, live.stderr
        assert "capturing" in live.stderr
        transcript = http_json(port, "/sessions/live/transcript.json")
        assert isinstance(transcript, dict)
        text = " ".join(f["text"] for f in transcript["finals"])
        assert wer(rec.reference, text) < 0.25, text

        watched = run_cli("watch", "live", "--url", url, "--quiet")
        assert watched.returncode == 0, watched.stderr
        assert wer(rec.reference, caption_text(watched.stdout)) < 0.25, watched.stdout


def test_a_missing_microphone_fails_in_one_line_before_connecting(tmp_path: Path) -> None:
    # Nothing listens on this port: a device error must come first, and without a traceback.
    run = run_cli("stream", "mic:no-such-device", "--url", f"ws://127.0.0.1:{free_port()}", timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "no-such-device" in run.stderr
