"""The benchmark harness: its pure parts (WebSocket framing, metrics, credentials, probe lines, report rows),
and each peer run for real in a tiny size."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from collections import Counter

import pytest

from bench import loadgen, loopprobe, metrics, peers, proc, report, scenarios, wire
from bench.freeim_site.credentials import credential, verify


def server_frame(opcode: int, payload: bytes, final: bool = True) -> bytes:
    length = len(payload)
    first = (0x80 if final else 0) | opcode
    if length < 126:
        return struct.pack("!BB", first, length) + payload
    if length < 65536:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


def test_parser_joins_frames_split_anywhere():
    stream = server_frame(wire.OP_TEXT, b"hello") + server_frame(wire.OP_TEXT, b"x" * 300) + \
        server_frame(wire.OP_PING, b"p") + server_frame(wire.OP_TEXT, b"y" * 70_000)
    for cut in (1, 2, 3, 7, 150, 400, len(stream) - 1):
        parser = wire.FrameParser()
        got = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert got == [(wire.OP_TEXT, b"hello"), (wire.OP_TEXT, b"x" * 300), (wire.OP_PING, b"p"),
                       (wire.OP_TEXT, b"y" * 70_000)]


def test_parser_reassembles_fragments_around_a_control_frame():
    parser = wire.FrameParser()
    stream = server_frame(wire.OP_TEXT, b"ab", final=False) + server_frame(wire.OP_PING, b"") + \
        server_frame(wire.OP_CONTINUATION, b"cd")
    assert parser.feed(stream) == [(wire.OP_PING, b""), (wire.OP_TEXT, b"abcd")]


def test_parser_refuses_a_masked_server_frame():
    with pytest.raises(ValueError):
        wire.FrameParser().feed(b"\x81\x81abcdx")


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_client_frames_are_masked_and_round_trip(size):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = wire.client_frame(wire.OP_PONG, payload)
    assert frame[0] == 0x80 | wire.OP_PONG and frame[1] & 0x80
    head = 2 + {126: 2, 127: 8}.get(frame[1] & 0x7F, 0)
    mask, body = frame[head:head + 4], frame[head + 4:]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(body)) == payload


def test_stamp_reads_seq_and_ts_of_both_targets_frames():
    freeim = json.dumps({"type": "message", "from": 0, "data": {"seq": 7, "ts": 1752312345.25, "pad": "x"}},
                        separators=(",", ":")).encode()
    baseline = b'{"seq":8,"ts":1752312346.5,"pad":"x"}'
    assert wire.stamp(freeim) == (7, 1752312345.25)
    assert wire.stamp(baseline) == (8, 1752312346.5)
    assert wire.stamp(b'{"type":"pong"}') is None


def test_http_helpers():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: keep-alive"
    assert wire.status_of(head) == 200 and wire.status_of(b"garbage") == 0
    assert wire.header_of(head, b"content-length") == b"12"
    assert wire.header_of(head, b"transfer-encoding") is None
    assert wire.split_ws_url("ws://127.0.0.1:6001/ws?token=a-b") == ("127.0.0.1", 6001, "/ws?token=a-b")
    with pytest.raises(ValueError):
        wire.split_ws_url("wss://example.com/ws")
    request = wire.post_request("h", 1, "/im/connect/", {"meta": "x"}, {"Authorization": "Bench 1:ab"})
    assert request.startswith(b"POST /im/connect/ HTTP/1.1\r\n") and b"Authorization: Bench 1:ab\r\n" in request
    assert request.endswith(b'\r\n\r\n{"meta": "x"}')


def test_credentials_prove_one_client_under_one_secret():
    header = credential("s3cret", 42)
    assert verify("s3cret", header) == 42
    assert verify("other", header) is None
    assert verify("s3cret", header.replace("42:", "43:")) is None
    assert verify("", credential("", 42)) is None  # no secret configured: nobody gets in
    assert verify("s3cret", "Basic abc") is None


#: A process whose thread burns half a second of CPU and ends, then waits to be measured.
BURNING_THREAD = """
import sys, threading, time
def burn():
    end = time.thread_time() + 0.5
    while time.thread_time() < end:
        pass
worker = threading.Thread(target=burn)
worker.start()
worker.join()
print("done", flush=True)
sys.stdin.read()
"""


def test_cpu_seconds_count_threads_that_ended():
    """Django's ASGI handler runs each request's sync code on a thread that ends with it: the business process's
    CPU, read from its live threads alone, showed about a third of what it used."""
    burner = subprocess.Popen([sys.executable, "-c", BURNING_THREAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert burner.stdout.readline() == "done\n"
        assert proc.cpu_seconds(burner.pid) >= 0.45
    finally:
        burner.kill()
        burner.wait()


def test_metrics():
    assert metrics.percentile([1, 2, 3, 4], 50) == 2
    assert metrics.percentile([1, 2, 3, 4], 99) == 4
    assert metrics.percentile([], 50) == 0
    figures = metrics.deliveries([10.5, 11.0], [10.0, 10.0], expected=3)
    assert figures == {"delivered": 2, "lost": 1, "time_to_all_ms": 1000.0, "per_s": 2}
    assert metrics.latency_ms([1.010, 1.030], [1.0, 1.0]) == {"p50": 10.0, "p90": 30.0, "p99": 30.0, "max": 30.0}
    assert metrics.kb_per_connection(1000, 3000, 100) == 20.0
    assert metrics.rate([1.0, 2.0, 3.0, 5.0], since=1.0) == 1
    assert metrics.ratio(200, 100, higher_is_better=True) == 2
    assert metrics.ratio(50, 100, higher_is_better=False) == 2
    assert metrics.ratio(None, 100, higher_is_better=True) is None


def test_probe_windows_overlapping_a_phase(tmp_path):
    path = tmp_path / "probe.jsonl"
    lines = [{"time": 100.0, "p99_ms": 1.0}, {"time": 101.0, "p99_ms": 50.0}, {"time": 102.0, "p99_ms": 3.0},
             {"time": 105.0, "p99_ms": 90.0}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    assert loopprobe.p99_during(path, 100.5, 101.5) == 50.0
    assert loopprobe.p99_during(path, 110, 111) is None
    assert loopprobe.p99_during(tmp_path / "missing.jsonl", 0, 1) is None


def test_report_rows_give_a_ratio_to_each_peer_and_the_target():
    runs = {"freeim": {"metrics": {"kb_per_conn": 20.0, "held": 19_500}},
            "channels": {"metrics": {"kb_per_conn": 40.0, "held": 19_500}},
            "bare": {"metrics": {"kb_per_conn": 10.0, "held": 19_500}}}
    rows = report.scenario_table("capacity", runs)
    assert rows[0] == "| capacity | freeim | channels | bare | freeim vs channels (x) | freeim vs bare (x) | target |"
    kb = next(row for row in rows if row.startswith("| RSS per idle connection"))
    assert "| 20 | 40 | 10 | 2 | 0.50 | <= 20: met |" in kb
    assert all(label in report.METRICS for _, label, _, _ in report.TARGETS)


def test_report_shows_the_load_generators_cpu_beside_a_figure_of_a_phase():
    runs = {"freeim": {"metrics": {"b10_per_s": 100_000, "burst_cpu_loadgens": 56, "b10_lost": 0}},
            "socketio": {"metrics": {"b10_per_s": 50_000, "burst_cpu_loadgens": 97, "b10_lost": 0}}}
    rows = report.scenario_table("broadcast-5000", runs)
    assert "| 10 back to back: deliveries/s | 100,000 (lg 56%) | 50,000 (lg 97%) | 2 | >= 100,000: met |" in rows
    assert "| 10 back to back: lost | 0 | 0 |  | <= 0: met |" in rows
    assert "| during the 10: loadgen CPU% (summed) | 56 | 97 |  |  |" in rows
    summary = report.summary_table({"broadcast-5000": runs})
    assert summary[0] == "| figure | freeim | socketio | freeim vs socketio (x) |"
    assert "| broadcast-5000: 10 back to back: deliveries/s | 100,000 (lg 56%) | 50,000 (lg 97%) | 2 |" in summary


def test_socketio_is_skipped_with_its_reason_where_node_is_missing(tmp_path, monkeypatch):
    from bench import run

    monkeypatch.setenv("PATH", str(tmp_path))  # no node, no npm
    assert run.available(["freeim", "socketio"]) == (["freeim"], {"socketio": peers.install_socketio()})
    assert "node and npm are not installed" in peers.install_socketio()
    with pytest.raises(SystemExit, match="unknown target 'other'"):
        run.available(["freeim", "other"])


@pytest.fixture(params=["bare", "socketio"])
def peer(request):
    """Each peer the bench adds beside Channels; Socket.IO is skipped only where node or npm is missing."""
    if request.param == "socketio":
        if peers.node_version() is None or shutil.which("npm") is None:
            pytest.skip("the Socket.IO peer needs node and npm")
        assert peers.install_socketio() is None  # npm ci from the committed lock file, unless already done
    return request.param


def test_a_peer_runs_every_kind_of_message_in_a_tiny_bench(peer):
    """Real servers, Redis, load generator and sender: a broadcast, private messages (3 nodes, 2 senders)
    and a chan message all arrive, none lost, and the report shows the peer with its load generator's CPU."""
    runs = {"broadcast": scenarios.broadcast(peer, 60, "core"),
            "private": scenarios.private(peer, 60, rate=200, seconds=1, flood=400, senders=2, layer="core"),
            "chan": scenarios.chan(peer, 40, "core", repeats=1)}
    broadcast, private, chan = (runs[name]["metrics"] for name in ("broadcast", "private", "chan"))
    assert broadcast["held"] == 60 and broadcast["b1_lost"] == 0 and broadcast["b10_lost"] == 0
    assert private["connected"] == 60 and private["delivered_pct"] == 100 and private["flood_delivered_pct"] == 100
    assert private["flood_sent"] == 400 and private["send_failed"] == 0
    assert chan["held"] == 40 and chan["chan_lost"] == 0
    assert {"connecting_cpu_loadgens", "b1_cpu_loadgens", "burst_cpu_senders"} <= broadcast.keys()
    text = report.markdown({"command": "test", "mode": "quick", "date": "today", "layer": "core", "machine": {},
                            "scenarios": {name: {peer: run} for name, run in runs.items()}})
    assert f"| broadcast | {peer} | target |" in text
    assert re.search(r"\| 1 broadcast: deliveries/s \| [\d,]+ \(lg \d+%\) \|", text)


def test_a_load_process_binds_its_sockets_to_each_of_its_source_addresses_in_turn():
    """Not by client id: the first of 4 load processes gets ids 4, 8, 12..., which put its 12,500 sockets
    of the cluster scenario on 2 of its 8 addresses, and the kernel's search for a free port to bind then
    cost 1.5 ms of CPU per connect: the load generator, not the servers, set the connect rate."""
    load = loadgen.Loadgen(0)
    used = Counter(load.source() for _ in range(3 * loadgen.SOURCES_PER_PROCESS))
    assert sorted(used) == [f"127.0.1.{n}" for n in range(1, loadgen.SOURCES_PER_PROCESS + 1)]
    assert set(used.values()) == {3}


@pytest.mark.parametrize("kind", ["freeim", "bare"])
def test_the_sends_scenario_measures_each_way_of_sending(kind):
    """One call each from 100 coroutines, one call each from a thread, calls of 100: every message arrives, and
    each way has its rate, the sender's CPU and Redis commands per message (freeim: its round trips too)."""
    figures = scenarios.sends(kind, 50, 400, 100, "core")["metrics"]
    for way in ("async", "sync", "batches"):
        assert figures[f"{way}_lost"] == 0 and figures[f"{way}_failed"] == 0, way
        assert figures[f"{way}_sends_per_s"] > 0 and figures[f"{way}_sender_us"] > 0
        assert figures[f"{way}_redis_commands"] >= 1
    assert (figures["sync_round_trips"] == 2) if kind == "freeim" else figures["sync_round_trips"] is None
    if kind == "freeim":
        assert figures["async_round_trips"] < 1  # the calls of 100 coroutines go together


def test_the_capacity_model_runs_each_operation_and_prints_the_shards():
    done = subprocess.run([sys.executable, "bench/capacity.py", "--repeat", "20"], capture_output=True, text=True,
                          timeout=120, check=True)
    rows = {line[:42].strip(): line[42:].split()[:3] for line in done.stdout.splitlines()}
    # Round trips: a connect is 3, and the process's first reads the live nodes first (61 in 20 connects).
    assert rows["connect"][0] == "3.05" and rows["disconnect"][0] == "1.00"
    assert float(rows["reap, per client (5 chans)"][1]) > 0  # commands, counted in Redis
    assert re.search(r"^\s+10,000,000\s+[\d,]+\s+[\d,]+\s+[\d.]+c\s+\d+$", done.stdout, re.MULTILINE)
