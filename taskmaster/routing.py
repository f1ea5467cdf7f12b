"""Every WebSocket route of the project, gathered from the apps that own them."""

from importlib import import_module

from django.urls import URLPattern

from taskmaster.llm.routing import websocket_urlpatterns as llm_ws

# Feature apps own their routes; the core only collects them by name (it never
# imports a feature app's code directly).
_APP_ROUTES = ("research.routing", "planning.routing", "analytics.routing", "recovery.routing")


def _collect() -> list[URLPattern]:
    patterns: list[URLPattern] = [*llm_ws]
    for module in _APP_ROUTES:
        try:
            patterns.extend(import_module(module).websocket_urlpatterns)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return patterns


websocket_urlpatterns = _collect()
