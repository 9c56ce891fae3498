"""freeim's benchmark suite: every scenario against freeim, then against each of its peers.

    pip install -r bench/requirements.txt
    python bench/run.py [--quick] [--scenarios capacity,broadcast,private,chan,cluster,sends]
                        [--targets freeim,channels,bare,socketio] [--layer core|pubsub] [--size capacity=10000]

The peers: the plain Channels baseline, a bare ``websockets`` server fed by Redis
and Socket.IO 4 with its Redis adapter (Node.js; its npm packages are installed
on first use, and it is skipped with a message where node or npm is missing).
Prints each scenario's table (with freeim's advantage over each peer as a ratio)
as soon as it ends, and writes ``bench/results/report.md``, ``report.json`` and ``plot.png``.
``--quick`` uses small sizes (the suite takes a few minutes); without it, the
issue's sizes (19,500 on one node, broadcasts to 5,000 and 15,000, 3,000 clients
at 2,000 msg/s for 30 s, a chan of 5,000, 50,000 over 3 nodes). ``--merge`` keeps
the other scenarios of an existing report.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import peers, proc, report, scenarios, targets  # noqa: E402
from bench.scenarios import Sizes  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ALL = ("capacity", "broadcast", "private", "chan", "cluster", "sends")
Run = Callable[[str], dict[str, Any]]


def plan(names: list[str], sizes: Sizes, layer: str) -> list[tuple[str, Run]]:
    """(scenario name, function of the target kind) for each scenario asked, in order."""
    runs: list[tuple[str, Run]] = []
    for name in names:
        if name == "capacity":
            runs.append(("capacity", lambda k: scenarios.capacity(k, sizes.capacity, 1, layer)))
        elif name == "broadcast":
            runs += [(f"broadcast-{n}", lambda k, n=n: scenarios.broadcast(k, n, layer)) for n in sizes.broadcast]
        elif name == "private":
            runs.append(("private", lambda k: scenarios.private(
                k, sizes.private_clients, sizes.private_rate, sizes.private_seconds, sizes.flood, sizes.senders,
                layer)))
        elif name == "chan":
            runs.append(("chan", lambda k: scenarios.chan(k, sizes.chan_members, layer)))
        elif name == "cluster":
            runs.append(("cluster", lambda k: scenarios.capacity(k, sizes.cluster, 3, layer)))
        elif name == "sends":
            runs.append(("sends", lambda k: scenarios.sends(k, sizes.sends_clients, sizes.sends, sizes.sends_sync,
                                                              layer)))
        else:
            raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(ALL)}")
    return runs


def sized(base: Sizes, overrides: list[str]) -> Sizes:
    """``base`` with ``key=value`` overrides (``broadcast=5000,15000``)."""
    changes: dict[str, Any] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "broadcast":
            changes[key] = tuple(int(v) for v in value.split(","))
        elif key in {f.name for f in dataclasses.fields(Sizes)}:
            changes[key] = type(getattr(base, key))(float(value)) if key != "private_seconds" else float(value)
        else:
            raise SystemExit(f"unknown size {key!r}")
    return dataclasses.replace(base, **changes)


def available(kinds: list[str]) -> tuple[list[str], dict[str, str]]:
    """The targets of ``kinds`` that can run here, and why each other one cannot (Socket.IO without node)."""
    unknown = [kind for kind in kinds if kind not in targets.KINDS]
    if unknown:
        raise SystemExit(f"unknown target {unknown[0]!r}; choose from {', '.join(targets.KINDS)}")
    skipped = {}
    if "socketio" in kinds:
        reason = peers.install_socketio()
        if reason:
            skipped["socketio"] = reason
            print(f"skipping socketio: {reason}")
    return [kind for kind in kinds if kind not in skipped], skipped


def run_one(name: str, kind: str, scenario: Run) -> dict[str, Any]:
    load = proc.load_average()
    print(f"\n== {name} / {kind}  (load average {load})", flush=True)
    started = time.monotonic()
    try:
        result = scenario(kind)
    except Exception as error:
        traceback.print_exc()
        result = {"error": f"{type(error).__name__}: {error}"[:500]}
    result.update(load=load, seconds=round(time.monotonic() - started))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole suite in a few minutes")
    parser.add_argument("--scenarios", default=",".join(ALL))
    parser.add_argument("--targets", default=",".join(targets.KINDS))
    parser.add_argument("--layer", choices=("core", "pubsub"), default="core", help="the baseline's channel layer")
    parser.add_argument("--size", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a size ({', '.join(f.name for f in dataclasses.fields(Sizes))})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--merge", action="store_true", help="keep other scenarios of an existing report.json")
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM as on Ctrl-C

    sizes = sized(scenarios.QUICK if options.quick else scenarios.FULL, options.size)
    kinds, skipped = available(options.targets.split(","))
    previous = options.out / "report.json"
    results: dict[str, dict[str, Any]] = {}
    if options.merge and previous.exists():
        results = json.loads(previous.read_text())["scenarios"]
    document = {"command": " ".join(["python bench/run.py", *sys.argv[1:]]), "mode": "quick" if options.quick
                else "full", "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "layer": options.layer,
                "sizes": dataclasses.asdict(sizes), "machine": proc.machine(), "skipped": skipped,
                "scenarios": results}
    if "socketio" in kinds:
        document["machine"]["node"] = peers.socketio_versions()
    print(f"machine: {document['machine']}\nsizes: {document['sizes']}")
    for name, scenario in plan(options.scenarios.split(","), sizes, options.layer):
        results[name] = {kind: run_one(name, kind, scenario) for kind in kinds}
        print("\n".join(report.scenario_table(name, results[name])), flush=True)
        report.write(document, options.out)
        try:
            from bench.plot import plot

            plot(document, options.out / "plot.png")
        except ImportError:
            print("(no plot: pip install -r bench/requirements.txt)")
    print(f"\nreport: {options.out / 'report.md'}")


if __name__ == "__main__":
    main()
