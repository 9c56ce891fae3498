from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "demo_project.chat"
    label = "chat"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the presence receivers)
