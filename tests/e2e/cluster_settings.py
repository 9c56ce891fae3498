"""Settings of the cluster tests' ``freeim_events`` workers: the demo's, plus receivers that record events.

The cluster comes from the environment, as for any demo process (``demo_project/cluster.py``).
"""

from demo_project.settings import *  # noqa: F403
from demo_project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.e2e.recorder"]
