"""freeim: FreeIM-style instant messaging for Django.

The business-side API lives in :mod:`freeim.im` (``from freeim import im``).
"""

__version__ = "0.1.0"
