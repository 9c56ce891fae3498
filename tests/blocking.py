"""Backend parts as blocking calls, so a test reads like the calls it makes: ``blocking(backend).store.locate([1])``."""

from types import SimpleNamespace

from freeim.backends import Backend, run_blocking


class _Blocking:
    """Each coroutine method of ``part`` run to its end with :func:`run_blocking`."""

    def __init__(self, part):
        self._part = part

    def __getattr__(self, name):
        method = getattr(self._part, name)
        return lambda *args, **kwargs: run_blocking(method(*args, **kwargs))


def blocking(backend: Backend) -> SimpleNamespace:
    """The parts of ``backend``'s blocking form, their methods returning values."""
    sync = backend.blocking()
    return SimpleNamespace(store=_Blocking(sync.store), nodes=_Blocking(sync.nodes),
                           transport=_Blocking(sync.transport), events=_Blocking(sync.events))
