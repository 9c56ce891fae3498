from django.apps import AppConfig


class FailingConfig(AppConfig):
    name = "tests.e2e.failing"
    label = "freeim_test_failing"

    def ready(self) -> None:
        from freeim.signals import client_offline, client_online

        from .receivers import broken

        client_online.connect(broken, dispatch_uid="freeim_test_failing.online")
        client_offline.connect(broken, dispatch_uid="freeim_test_failing.offline")
