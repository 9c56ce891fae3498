"""``python manage.py freeim_events``: turn the cluster's online/offline events into Django signals."""

from __future__ import annotations

import os
import signal
import socket
import threading
from importlib.util import find_spec
from typing import Any

from django.core.management.base import CommandError, CommandParser

from freeim.backends import get_backend
from freeim.events import consume
from freeim.management.base import FreeIMCommand


class Command(FreeIMCommand):
    help = ("Send freeim's client_online / client_offline signals for the cluster's events. "
            "Run any number of copies: each event is handled by one of them, and again by another if the one "
            "that took it dies before acking it (at least once).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--group", default="freeim", help="consumer group; one group sees every event once")
        parser.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}",
                            help="this worker's name in the group (default: host-pid)")
        parser.add_argument("--claim-idle", type=float, default=30.0,
                            help="seconds this worker's share of the events stays its own after its last read: "
                                 "if it dies, another worker takes them over then, and handles again what it "
                                 "took and did not ack (default 30)")
        parser.add_argument("--metrics-port", type=int,
                            help="serve this worker's Prometheus metrics on this port (needs prometheus-client)")
        parser.add_argument("--metrics-address", default="127.0.0.1",
                            help="the address they are served on (default 127.0.0.1: this host only)")

    def handle(self, *args: Any, group: str, consumer: str, claim_idle: float, metrics_port: int | None,
               metrics_address: str, **options: Any) -> None:
        events = get_backend().blocking().events
        if events is None:
            raise CommandError("freeim_events needs a backend with an events stream (FREEIM['REDIS_URL']); the "
                               "embedded mode sends signals in the server process itself.")
        if metrics_port is not None:
            if find_spec("prometheus_client") is None:
                raise CommandError("--metrics-port needs prometheus-client: pip install 'django-freeim[metrics]'.")
            from freeim.metrics import serve

            serve(metrics_port, metrics_address)
            self.stdout.write(f"freeim events: metrics on http://{metrics_address}:{metrics_port}/")
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"freeim events: consumer {consumer} of group {group}")
        consume(events, group, consumer, claim_idle, stop)
