"""The demo's own tests: the suite's project plus the demo's chat app and URLs.

The chat app's presence receivers stay connected once it was installed (signals outlive changes
to the app registry); they act only on chat-page terminals (meta ``"chat"``), which no other test opens.
"""

import pytest
from django.test import modify_settings, override_settings


@pytest.fixture(autouse=True)
def demo_project():
    with modify_settings(INSTALLED_APPS={"append": "demo_project.chat"}), \
            override_settings(ROOT_URLCONF="demo_project.urls"):
        yield
