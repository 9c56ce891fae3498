"""The REST API's request parser: JSON only, parsed by :func:`freeim.protocol.decode`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .. import protocol
from ..exceptions import NestingTooDeep


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with freeim's nesting limit: deeper than ``MAX_JSON_DEPTH`` (64) levels is a 400
    ``too_deep``, refused before parsing. Being DRF's subclass, it gets the body through Django's
    ``request.body``, which enforces ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413 ``request_too_large``)."""

    def parse(self, stream: IO[bytes], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            # bytes.decode takes text encodings only: a "bz2_codec" charset cannot inflate the body.
            return protocol.decode(stream.read().decode(encoding))
        except LookupError:
            raise ParseError(f"Unsupported charset {encoding!r} in the Content-Type header.") from None
        except NestingTooDeep:
            raise
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
