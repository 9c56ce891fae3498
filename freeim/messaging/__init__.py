"""How a message is routed: the helper operations (:mod:`.operations`), what they hand each node
(:mod:`.payloads`), and which node a client connects to (:mod:`.router`).

The business API (:mod:`freeim.im`) and the REST API (:mod:`freeim.rest`) both go through here.
"""
