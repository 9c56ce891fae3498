"""The node runtime: what runs in each server process that holds WebSockets.

:mod:`.consumer` takes a socket (token, handshake, frames); :mod:`.runtime` is the node itself;
:mod:`.attachments` keeps its connections in the store's presence; :mod:`.delivery` writes what
the transport delivers to the sockets, through :mod:`.connection`; :mod:`.lifecycle` starts and
stops it with the server.
"""
