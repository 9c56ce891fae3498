"""plot.png of a report: latency percentiles and deliveries/s per scenario, freeim beside each peer.

    python bench/plot.py [bench/results/report.json]

Needs matplotlib (bench/requirements.txt); ``bench/run.py`` calls :func:`plot`
after every scenario and skips the plot with a note if matplotlib is missing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLOURS = {"freeim": "#2a7ab0", "channels": "#d0743c", "bare": "#4a9a4a", "socketio": "#8a5ab0"}
PERCENTILES = ("p50", "p90", "p99", "max")


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = {name: runs for name, runs in report["scenarios"].items()
                 if any(run.get("plot") for run in runs.values())}
    kinds = [k for k in COLOURS if any(k in runs for runs in scenarios.values())]
    figure, (left, right) = plt.subplots(1, 2, figsize=(16, 6))
    _latency(left, scenarios, kinds)
    _throughput(right, scenarios, kinds)
    figure.suptitle(f"freeim beside {', '.join(k for k in kinds if k != 'freeim') or 'no peer'} "
                    f"({report['mode']} sizes, {report['date']})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _latency(axes: Any, scenarios: dict[str, Any], kinds: list[str]) -> None:
    names = [n for n, runs in scenarios.items() if any("latency_ms" in r.get("plot", {}) for r in runs.values())]
    width = 0.8 / max(1, len(kinds) * len(PERCENTILES))
    for k, kind in enumerate(kinds):
        for p, percentile in enumerate(PERCENTILES):
            offset = (k * len(PERCENTILES) + p) * width - 0.4 + width / 2
            values = [scenarios[n].get(kind, {}).get("plot", {}).get("latency_ms", {}).get(percentile, 0) or 0
                      for n in names]
            axes.bar([i + offset for i in range(len(names))], values, width, color=COLOURS[kind],
                     alpha=0.35 + 0.65 * (p + 1) / len(PERCENTILES),
                     label=f"{kind} {percentile}")
    axes.set_xticks(range(len(names)), names, rotation=15)
    axes.set_yscale("log")
    axes.set_ylabel("latency (ms, log): p50 / p90 / p99 / max")
    axes.set_title("latency per delivery (1 broadcast, paced private, chan)")
    axes.legend(fontsize=6, ncol=len(kinds))


def _throughput(axes: Any, scenarios: dict[str, Any], kinds: list[str]) -> None:
    names = list(scenarios)
    width = 0.8 / max(1, len(kinds))
    for k, kind in enumerate(kinds):
        plots = [scenarios[n].get(kind, {}).get("plot", {}) for n in names]
        values = [p.get("per_s", 0) or 0 for p in plots]
        bars = axes.bar([i + k * width - 0.4 + width / 2 for i in range(len(names))], values, width,
                        color=COLOURS[kind], label=kind)
        labels = [f"{p['loadgen_cpu']}%" if p.get("loadgen_cpu") is not None and v else ""
                  for p, v in zip(plots, values, strict=True)]
        axes.bar_label(bars, labels, fontsize=6, rotation=90, padding=2)
    axes.set_xticks(range(len(names)), names, rotation=15)
    axes.set_yscale("log")
    axes.set_ylabel("per second (log)")
    axes.set_title("connects/s (capacity), deliveries/s (10 broadcasts, flood, chan);\n"
                   "above each bar: load generators' CPU% meanwhile", fontsize=10)
    axes.legend()


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "report.json")
    plot(json.loads(source.read_text()), source.with_name("plot.png"))
