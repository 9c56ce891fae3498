"""The node runtime: what runs in each server process that holds WebSockets.

:mod:`.consumer` takes a socket (token, handshake, frames); :mod:`.runtime` is the node itself;
:mod:`.attachments` keeps its connections in the store's presence; :mod:`.delivery` writes what
the transport delivers to the sockets, through :mod:`.connection`; :mod:`.lifecycle` starts and
stops it with the server. Beside them: the node's local index of connections and chans
(:mod:`.registry`, kept true by :mod:`.chansync`), what orders its store updates (:mod:`.storegate`),
its online/offline signals in the embedded mode (:mod:`.local_events`), and its garbage collection and
loop-lateness helpers (:mod:`.heap`, :mod:`.probe`).
"""
