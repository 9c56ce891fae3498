"""The baseline: the plain Django Channels app a developer would otherwise write.

``AsyncWebsocketConsumer`` at ``/ws/<id>``, one group per user and one for
everyone, ``channel_layer.group_send`` from a separate process, daphne and
channels_redis. No token flow: the client id is in the path.
"""
