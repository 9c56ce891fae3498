from django.apps import AppConfig


class RecorderConfig(AppConfig):
    name = "tests.e2e.recorder"
    label = "freeim_test_recorder"

    def ready(self) -> None:
        from freeim.signals import client_offline, client_online

        from .receivers import record_offline, record_online

        # Sync receivers: the worker sends signals from its own thread, as a project's would run.
        client_online.connect(record_online, dispatch_uid="freeim_test_recorder.online")
        client_offline.connect(record_offline, dispatch_uid="freeim_test_recorder.offline")
