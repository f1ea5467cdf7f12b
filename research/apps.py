from django.apps import AppConfig


class ResearchConfig(AppConfig):
    name = "research"

    def ready(self) -> None:
        # The API core never imports feature apps: the research models are plugged in here.
        from research.api import ResearchModels
        from taskmaster.api.providers import register_virtual_models

        register_virtual_models(ResearchModels())
