"""DRF authentication of the benchmark's clients (see :mod:`.credentials`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from .credentials import SCHEME, verify


@dataclass(frozen=True)
class BenchClient:
    """The user a bench request speaks as: freeim's default resolver reads ``pk``."""

    pk: int
    is_authenticated: bool = True
    is_staff: bool = False


class BenchAuthentication(BaseAuthentication):
    """``Authorization: Bench <id>:<hmac>`` under ``$BENCH_SECRET``; no secret, no access."""

    def authenticate(self, request: Any) -> tuple[BenchClient, None] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith(SCHEME + " "):
            return None
        client = verify(os.environ.get("BENCH_SECRET", ""), header)
        if client is None:
            raise AuthenticationFailed("bad bench credential")
        return BenchClient(client), None

    def authenticate_header(self, request: Any) -> str:
        return SCHEME
