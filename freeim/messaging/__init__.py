"""How a message is routed: the helper operations (:mod:`.operations`), what they hand each node
(:mod:`.payloads`), and which node a client is sent to connect to when its token is issued
(:mod:`.router`; a message finds its receivers' nodes in the store).

The business API (:mod:`freeim.im`) and the REST API (:mod:`freeim.rest`) both go through here.
"""
