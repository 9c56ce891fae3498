"""The loop probe: its summary arithmetic, and a node writing its lines when enabled."""

import asyncio
import json

from freeim.node import probe
from freeim.node.lifecycle import ensure_node, stop_node


def test_summary_gives_percentiles_in_milliseconds():
    lateness = [i / 1000 for i in range(100)]  # 0..99 ms
    assert probe.summary(lateness) == {"samples": 100, "p50_ms": 50.0, "p99_ms": 99.0, "max_ms": 99.0}
    assert probe.summary([]) == {"samples": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}


async def test_a_node_with_the_probe_enabled_writes_a_line_a_second(tmp_path, monkeypatch):
    out = tmp_path / "probe.jsonl"
    monkeypatch.setenv(probe.PROBE_ENV, str(out))
    monkeypatch.setattr(probe, "REPORT_EVERY", 0.1)
    await ensure_node()
    try:
        await asyncio.sleep(0.35)
    finally:
        await stop_node()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 2
    assert {"node", "clients", "samples", "p99_ms"} <= set(lines[0])
    assert lines[0]["node"] == "local" and lines[0]["samples"] > 0
