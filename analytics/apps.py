from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        from analytics.router import route
        from taskmaster.llm import set_router

        set_router(route)
