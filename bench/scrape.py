"""A node's and a sender's Prometheus scrape under the benchmark's load (README: *Metrics*).

    python bench/scrape.py [--clients 1000] [--rate 1000] [--seconds 5] [--flood 20000] [--out DIR]

Starts what ``bench/run.py`` starts for freeim (a private redis-server, one daphne node, the business
app), connects ``--clients`` through the REST connect flow, then one sender process (a business
process: ``freeim.im``'s async twins) sends private messages at ``--rate`` for ``--seconds``, then
``--flood`` as fast as it can, then 5 broadcasts and 3 chan messages. The node's ``METRICS_PATH`` is
scraped halfway through the flood and at the end, the sender's registry at the end; the three scrapes
go to ``--out`` (default ``bench/results/scrape``), and the ``freeim_*`` lines of the last two are
printed (buckets left out).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import scenarios  # noqa: E402

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CHAN = "bench"


def scrape(port: int) -> str:
    with NO_PROXY.open(f"http://127.0.0.1:{port}/freeim/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def freeim_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines()
                     if line.startswith("freeim_") and "_bucket{" not in line and "_created" not in line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000, help="paced private messages per second")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--flood", type=int, default=20_000, help="private messages sent as fast as possible")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scrape")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    scrapes: dict[str, str] = {}
    with scenarios.session("freeim", 1, options.clients, "core") as s:
        port = s.target.ports[0]
        s.connect(list(range(1, options.clients + 1)))
        sender = s.start_senders()
        sender.one("join", chan=CHAN, ids=s.ids)
        paced = sender.shared("private", ids=s.ids, rate=options.rate, seconds=options.seconds)
        halfway = threading.Timer(0.5, lambda: scrapes.setdefault("node-during-flood", scrape(port)))
        halfway.start()
        flood = sender.shared("flood", ids=s.ids, count=options.flood)
        halfway.join()
        sender.one("broadcast", count=5)
        sender.one("chan", chan=CHAN, count=3)
        s.loadgens.wait_frames(paced["sent"] + flood["sent"] + 8 * len(s.ids))
        time.sleep(1)
        scrapes["node-after"] = scrape(port)
        scrapes["sender-after"] = sender.one("metrics")
    for name, text in scrapes.items():
        (options.out / f"{name}.prom").write_text(text)
    print(f"sent {paced['sent']} paced and {flood['sent']} flooded private messages to {options.clients} clients; "
          f"scrapes in {options.out}")
    for name in ("node-after", "sender-after"):
        print(f"\n--- {name} (freeim_*, buckets left out)\n{freeim_lines(scrapes[name])}")


if __name__ == "__main__":
    main()
