from django.urls import path

from taskmaster.llm.consumers import PlaygroundConsumer

websocket_urlpatterns = [
    path("ws/llm/playground/", PlaygroundConsumer.as_asgi()),
]
