"""What this process's node has done, counted as plain ints where it happens (a dict increment per handshake,
close or payload: nothing per frame) and read by the metrics collector (:mod:`freeim.metrics`) at scrape time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Tally:
    handshakes: int = 0
    #: Refused handshakes by why: ``token``, ``wrong_node``, ``busy``, ``store``, ``no_node``, ``draining``.
    refusals: Counter[str] = field(default_factory=Counter)
    #: Sockets the node closed, by close code.
    closes: Counter[int] = field(default_factory=Counter)
    #: Payloads applied, by operation (``send``, ``chan``, ``broadcast``, ``join``, ...).
    payloads: Counter[str] = field(default_factory=Counter)


#: The process's tally: one node per process, and Prometheus counters are per process too.
TALLY = Tally()
