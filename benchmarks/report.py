"""What every server-side benchmark report carries: the machine it ran on; where its JSON and Markdown go."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
"""Where reports go by default (`results/tmp/` is git-ignored, for trial runs)."""


def machine_meta(model: str, argv: list[str]) -> dict[str, Any]:
    """The run's date, machine and load before it started (wall-clock numbers depend on all three)."""
    return {
        "date": str(dt.date.today()),
        "host": platform.node() or "this machine",
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "model": model,
        "argv": argv,
    }


def default_output(kind: str) -> Path:
    """``results/DATE-MACHINE-KIND.json``."""
    return RESULTS / f"{dt.date.today()}-{platform.machine()}-{kind}.json"


def markdown_path(path: Path) -> Path:
    """`path` with `.md` appended unless it ends so (a name may hold dots: `interval-0.6`)."""
    return path if path.suffix == ".md" else path.with_name(path.name + ".md")


def write_report(result: dict[str, Any], markdown: str, out: Path) -> None:
    """Prints the Markdown and writes it beside the JSON of the raw numbers (same stem)."""
    print(markdown)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.md')}")
