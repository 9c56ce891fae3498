"""Steady traffic from the test process (the business side) to terminals, and what became of each send: for the
failover tests (Redis Sentinel, Redis Cluster), where every send must reach its socket or be refused to its
caller, never lost in silence."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from websockets.asyncio.client import ClientConnection

from freeim import im
from freeim.backends import get_backend
from freeim.exceptions import StoreUnavailable
from tests.e2e.cluster import report

#: Seconds between two sends (each its own task: a send waiting for the replica holds up no other).
SEND_EVERY = 0.02


class Traffic:
    """Sends from this process, one every :data:`SEND_EVERY` seconds round robin over ``sockets``, and what became
    of each: ``ok`` (with its message id) or ``refused`` (``StoreUnavailable``), whether it reached its socket,
    and whether it is in its receiver's inbox, for a terminal that reconnects. Any other error fails the test."""

    def __init__(self, sockets: dict[str, ClientConnection]) -> None:
        self.sockets = sockets
        self.outcomes: dict[int, tuple[str, str, float, float]] = {}  # n -> client, outcome, started, ended
        self.message_ids: dict[int, str] = {}
        self.received: dict[str, set[int]] = {client: set() for client in sockets}
        self.fences: dict[str, asyncio.Future[None]] = {}
        self.stopping = asyncio.Event()
        #: The longest a socket went without a frame while sends went through.
        self.longest_pause = 0.0

    async def run(self) -> None:
        readers = [asyncio.create_task(self._read(client, ws)) for client, ws in self.sockets.items()]
        sends: list[asyncio.Task[None]] = []
        clients = list(self.sockets)
        while not self.stopping.is_set():
            sends.append(asyncio.create_task(self._send(len(sends), clients[len(sends) % len(clients)])))
            await asyncio.sleep(SEND_EVERY)
        await asyncio.gather(*sends)
        await self._fence()
        for reader in readers:
            reader.cancel()

    async def _send(self, n: int, client: str) -> None:
        started = time.monotonic()
        try:
            self.message_ids[n] = await im.asend_message("boss", [client], {"n": n})
            outcome = "ok"
        except StoreUnavailable:
            outcome = "refused"
        self.outcomes[n] = (client, outcome, started, time.monotonic())

    async def _read(self, client: str, ws: ClientConnection) -> None:
        last = time.monotonic()
        async for raw in ws:  # a socket that closes ends this early: the fence then never comes
            data = json.loads(raw).get("data")
            if isinstance(data, dict) and "n" in data:
                self.received[client].add(data["n"])
                self.longest_pause, last = max(self.longest_pause, time.monotonic() - last), time.monotonic()
            elif isinstance(data, dict) and data.get("fence") in self.fences:
                self.fences[data["fence"]].set_result(None)

    async def _fence(self) -> None:
        """A last message to each socket, sent after every send returned: the node hands a socket its frames in
        order, so what has not come before it never will."""
        for client in self.sockets:
            fence = uuid.uuid4().hex
            self.fences[fence] = asyncio.get_running_loop().create_future()
            await im.asend_message("boss", [client], {"fence": fence})
        await asyncio.wait_for(asyncio.gather(*self.fences.values()), 10)

    async def figures(self) -> dict[str, int]:
        """How many sends there were, ``ok`` and ``refused``; of the ok ones, how many never reached their socket
        (``lost``) or are not in their receiver's inbox (``not_kept``)."""
        ok = [n for n, (_c, outcome, *_) in self.outcomes.items() if outcome == "ok"]
        kept = set()
        for client in self.sockets:
            kept |= {message.id for message in (await get_backend().store.read_inbox(client, "*")).messages}
        return {"sent": len(self.outcomes), "ok": len(ok), "refused": len(self.outcomes) - len(ok),
                "lost": sum(n not in self.received[self.outcomes[n][0]] for n in ok),
                "not_kept": sum(self.message_ids[n] not in kept for n in ok)}

    async def going_through(self) -> bool:
        """Whether every send started in the last half second went through (and there were some)."""
        latest = [outcome for _c, outcome, started, _e in self.outcomes.values() if started > time.monotonic() - 0.5]
        return bool(latest) and all(outcome == "ok" for outcome in latest)

    async def ended(self, running: asyncio.Task[None], what: str, **seconds: float) -> dict[str, int]:
        """Stop the traffic (``running`` is :meth:`run`) a second after it goes through again, print its
        :meth:`figures` with ``seconds`` (how long each step of the failover took), and return them."""
        await asyncio.sleep(1)
        self.stopping.set()
        await running
        figures = await self.figures()
        print(f"\nfreeim {what}: sends {figures['sent']}, ok {figures['ok']}, refused (StoreUnavailable) "
              f"{figures['refused']}, lost {figures['lost']}, ok but not in the receiver's inbox {figures['not_kept']}")
        for name, value in {"longest_pause_of_a_socket": self.longest_pause, **seconds, **self.refused_for()}.items():
            report(f"{what}: {name.replace('_', ' ')}", value)
        return figures

    def refused_for(self) -> dict[str, float]:
        """From the first refused send's start to the last one's end, if any was refused."""
        spans = [(started, ended) for _c, outcome, started, ended in self.outcomes.values() if outcome == "refused"]
        return {"sends_refused_for": max(e for _, e in spans) - min(s for s, _ in spans)} if spans else {}
