from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "demo_project.chat"
    label = "chat"

    def ready(self) -> None:
        from . import openapi, receivers  # noqa: F401  (the schema's descriptions; the presence receivers)
