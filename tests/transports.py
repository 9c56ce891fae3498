"""Transports for tests that need to hold a send's delivery back."""


class HeldTransport:
    """A transport that keeps what it is asked to publish (``Backend(store, nodes, HeldTransport())``)."""

    def __init__(self):
        self.batches = {}

    async def publish(self, batches):
        self.batches.update(batches)
