"""Charts of benchmark results (matplotlib, headless), written as PNGs under `benchmarks/results/`.

    python -m benchmarks.plots concurrency RESULT.json [--out DIR]
    python -m benchmarks.plots fanout RESULT.json [--out DIR]

The JSON files are what `benchmarks.concurrency` and `benchmarks.fanout` write. `latency_cdf` and
`wer_bars` take plain lists/dicts of numbers, for any benchmark that has them. Every function returns the
path it wrote. matplotlib is imported lazily (``pip install matplotlib``, in the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import RESULTS

DPI = 120


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("plots need matplotlib: pip install matplotlib (or the 'bench' extra)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    _pyplot().close(fig)
    return out


def _value(x: float | None) -> float:
    return math.nan if x is None else float(x)


def concurrency_lag(result: Mapping[str, Any], out: Path | None = None) -> Path:
    """Per configuration: end lag (max over streams) and median final delay against the number of speakers,
    with the bounds that define "sustained"."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    meta = result["meta"]
    fig, (lag_ax, delay_ax) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for config in result["configs"]:
        levels = config["levels"]
        n = [lv["n"] for lv in levels]
        (line,) = lag_ax.plot(
            n, [_value(lv["end_lag_max"]) for lv in levels], marker="o", label=config["label"]
        )
        lag_ax.plot(n, [_value(lv["end_lag_p50"]) for lv in levels], ls=":", color=line.get_color())
        delay_ax.plot(n, [_value(lv["final_delay_p50"]) for lv in levels], marker="o", color=line.get_color())
        delay_ax.plot(n, [_value(lv["final_delay_p95"]) for lv in levels], ls=":", color=line.get_color())
    lag_ax.axhline(meta["bound_lag"], color="grey", ls="--", lw=1)
    delay_ax.axhline(meta["bound_delay"], color="grey", ls="--", lw=1)
    lag_ax.set(xlabel="simultaneous real-time speakers", ylabel="end lag, s (solid max, dotted p50)")
    delay_ax.set(xlabel="simultaneous real-time speakers", ylabel="final delay, s (solid p50, dotted p95)")
    lag_ax.legend(fontsize=8)
    lag_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Concurrency, {meta['model']}, {meta['host']} ({meta['cpus']} CPUs), {meta['date']}")
    return _save(fig, out or RESULTS / f"{meta['date']}-concurrency-lag.png")


def fanout_latency(result: Mapping[str, Any], out: Path | None = None) -> Path:
    """Bars of the finals' fan-out latency (p50, p90, p99) per number of viewers."""
    plt = _pyplot()
    meta, levels = result["meta"], result["levels"]
    quantiles = ("50", "90", "99")
    x = np.arange(len(levels))
    width = 0.8 / len(quantiles)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, q in enumerate(quantiles):
        values = [_value(lv["final_latency_ms"].get(q, lv["final_latency_ms"].get(int(q)))) for lv in levels]
        ax.bar(x + (i - (len(quantiles) - 1) / 2) * width, values, width, label=f"p{q}")
    ax.set_xticks(x, [str(lv["viewers"]) for lv in levels])
    ax.set(xlabel="viewers", ylabel="final latency after the speaker's copy, ms")
    ax.legend()
    ax.set_title(f"Fan-out, {meta['host']} ({meta['cpus']} CPUs), {meta['date']}")
    return _save(fig, out or RESULTS / f"{meta['date']}-fanout-latency.png")


def latency_cdf(
    series: Mapping[str, Sequence[float]], out: Path, *, xlabel: str = "latency, s", title: str = ""
) -> Path:
    """Empirical CDFs, one line per named list of latencies."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in series.items():
        data = np.sort(np.asarray(values, dtype=float))
        if len(data):
            ax.step(
                data, np.arange(1, len(data) + 1) / len(data), where="post", label=f"{name} (n={len(data)})"
            )
    ax.set(xlabel=xlabel, ylabel="fraction <= x", ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, out)


def wer_bars(values: Mapping[str, float], out: Path, *, title: str = "", percent: bool = True) -> Path:
    """One bar per named WER (fractions, shown as % unless `percent` is false)."""
    plt = _pyplot()
    names = list(values)
    heights = [100 * values[n] if percent else values[n] for n in names]
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(names) + 2), 4))
    bars = ax.bar(range(len(names)), heights)
    ax.bar_label(bars, fmt="%.1f" if percent else "%.3f", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("WER %" if percent else "WER")
    if title:
        ax.set_title(title)
    return _save(fig, out)


def concurrency_delay_cdfs(result: Mapping[str, Any], out_dir: Path = RESULTS, stem: str = "") -> list[Path]:
    """Final-delay CDFs per configuration, one line per level, and WER bars per configuration and level."""
    written = []
    stem = stem or f"{result['meta']['date']}-concurrency"
    wers: dict[str, float] = {}
    for i, config in enumerate(result["configs"]):
        series = {
            f"N={lv['n']}": [d for s in lv["streams"] for d in s["final_delays"]] for lv in config["levels"]
        }
        name = f"{stem}-delay-cdf-{i}.png"
        written.append(latency_cdf(series, out_dir / name, xlabel="final delay, s", title=config["label"]))
        wers |= {f"{config['label']}, N={lv['n']}": lv["wer_mean"] for lv in config["levels"]}
    written.append(wer_bars(wers, out_dir / f"{stem}-wer.png", title="Mean WER per stream"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=("concurrency", "fanout"))
    parser.add_argument("result", type=Path, help="JSON written by the benchmark")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the PNGs")
    args = parser.parse_args(argv)
    result = json.loads(args.result.read_text(encoding="utf-8"))
    stem = args.result.stem
    if args.kind == "concurrency":
        written = [concurrency_lag(result, args.out / f"{stem}-lag.png")]
        written += concurrency_delay_cdfs(result, args.out, stem)
    else:
        written = [fanout_latency(result, args.out / f"{stem}-latency.png")]
        levels = result["levels"]
        series = {f"{lv['viewers']} viewers": lv["final_latencies_ms"] for lv in levels}
        written.append(latency_cdf(series, args.out / f"{stem}-cdf.png", xlabel="final fan-out latency, ms"))
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
