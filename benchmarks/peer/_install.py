"""Installing WhisperLive into its own virtual environment (outside the repository)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

WHISPERLIVE_VERSION = "0.10.0"
TORCH_VERSION = "2.13.0"
"""A CPU build of this torch lies on the local disk of the benchmark machines (pip's find-links); installing
it first keeps whisper-live's plain ``torch`` requirement from pulling a multi-GB CUDA build."""
SILERO_VAD_VERSION = "6.2.3"

CACHE_DIR = Path(os.environ.get("STREAMER_BENCH_CACHE", Path.home() / ".cache" / "streamer-bench"))
VENV_DIR = CACHE_DIR / "whisperlive-venv"
WHISPERLIVE_CACHE = Path.home() / ".cache" / "whisper-live"
"""WhisperLive looks for ``silero_vad.onnx`` here and runs ``wget`` to fetch it when it is missing."""
MARKER = VENV_DIR / ".streamer-bench-installed.json"


class PeerInstallError(RuntimeError):
    """The peer could not be installed; the message says which step failed and how to retry."""


def venv_python(venv: Path = VENV_DIR) -> Path:
    return venv / "bin" / "python"


def _run(cmd: list[str], step: str, log: Path) -> float:
    print(f"[peer] {step}: {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    took = time.monotonic() - start
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise PeerInstallError(f"{step} failed (exit {proc.returncode}); full log: {log}\n{tail}")
    print(f"[peer] {step}: done in {took:.0f} s", flush=True)
    return took


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root, name)
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def _ensure_portaudio(log: Path) -> None:
    """PyAudio (a whisper-live requirement, used only by its microphone client) builds against PortAudio."""
    if Path("/usr/include/portaudio.h").exists():
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise PeerInstallError(
            "PyAudio needs the PortAudio headers: run `apt-get update && apt-get install -y portaudio19-dev`"
        )
    env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive"]
    _run([*env_cmd, "apt-get", "update", "-qq"], "apt-get update", log)
    _run(
        [*env_cmd, "apt-get", "install", "-y", "-qq", "portaudio19-dev"],
        "apt-get install portaudio19-dev",
        log,
    )


def ensure_silero_onnx(log: Path | None = None) -> Path:
    """Put the Silero VAD ONNX model where WhisperLive expects it, so it never tries to download it.

    WhisperLive 0.10.0's ``vad.py`` feeds the model ``input``, ``state`` and ``sr``: the single-file
    Silero v5+ export that the ``silero-vad`` wheel ships as ``silero_vad/data/silero_vad.onnx``.
    faster-whisper's own ``assets/silero_vad_v6.onnx`` takes ``input``, ``h`` and ``c`` and does not fit.
    (Only WhisperLive's TensorRT backend loads this file; the faster_whisper backend uses faster-whisper's
    own VAD. It is put in place anyway so that nothing ever calls ``wget``.)
    """
    target = WHISPERLIVE_CACHE / "silero_vad.onnx"
    if target.exists() and target.stat().st_size > 0:
        return target
    log = log or CACHE_DIR / "install.log"
    wheels = CACHE_DIR / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("silero_vad-*.whl"))
    if not found:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                f"silero-vad=={SILERO_VAD_VERSION}",
                "-d",
                str(wheels),
            ],
            "pip download silero-vad",
            log,
        )
        found = sorted(wheels.glob("silero_vad-*.whl"))
    if not found:
        raise PeerInstallError(f"no silero_vad wheel in {wheels}")
    WHISPERLIVE_CACHE.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[-1]) as wheel:
        data = wheel.read("silero_vad/data/silero_vad.onnx")
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    print(f"[peer] wrote {target} ({len(data) / 1e6:.1f} MB) from {found[-1].name}", flush=True)
    return target


def ensure_venv(venv: Path = VENV_DIR) -> Path:
    """Create WhisperLive's own virtual environment on first use and return its python.

    Idempotent: a marker file written after a successful install makes later calls return at once.
    """
    python = venv_python(venv)
    marker = venv / MARKER.name
    if marker.exists() and python.exists():
        ensure_silero_onnx()
        return python
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log = CACHE_DIR / "install.log"
    print(f"[peer] installing whisper-live {WHISPERLIVE_VERSION} into {venv} (log: {log})", flush=True)
    times: dict[str, float] = {}
    _ensure_portaudio(log)
    if not python.exists():
        times["venv"] = _run([sys.executable, "-m", "venv", str(venv)], "create venv", log)
    pip = [str(python), "-m", "pip", "install", "--progress-bar", "off"]
    times["torch"] = _run([*pip, f"torch=={TORCH_VERSION}"], f"pip install torch=={TORCH_VERSION}", log)
    times["whisper-live"] = _run(
        [*pip, f"whisper-live=={WHISPERLIVE_VERSION}", f"torch=={TORCH_VERSION}"],
        f"pip install whisper-live=={WHISPERLIVE_VERSION}",
        log,
    )
    check = "import whisper_live.server, faster_whisper, torch; print(torch.__version__)"
    _run([str(python), "-c", check], "import check", log)
    ensure_silero_onnx(log)
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    size = _dir_size(venv)
    marker.write_text(
        json.dumps(
            {
                "whisper_live": WHISPERLIVE_VERSION,
                "install_seconds": times,
                "venv_bytes": size,
                "freeze": freeze.splitlines(),
            },
            indent=1,
        )
    )
    print(f"[peer] installed: venv {size / 1e9:.2f} GB, steps {times}", flush=True)
    return python
