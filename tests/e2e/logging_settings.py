"""Settings of the daphne node in tests/e2e/test_logs.py: the demo's (``DEBUG`` on), a presence receiver that
raises, and every freeim logger at DEBUG."""

from demo_project.settings import *  # noqa: F403
from demo_project.settings import INSTALLED_APPS, LOGGING

INSTALLED_APPS = [*INSTALLED_APPS, "tests.e2e.failing"]
LOGGING = {**LOGGING, "loggers": {"freeim": {**LOGGING["loggers"]["freeim"], "level": "DEBUG"}}}
