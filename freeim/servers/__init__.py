"""Adapters to what freeim runs inside: every reach into a server's or a framework's internals lives
here, one module per server (:mod:`.daphne`) or framework (:mod:`.channels`), guarded by version
and feature checks, with a plain-ASGI fallback where a check fails."""
