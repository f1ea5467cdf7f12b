from django.urls import path

from research.consumers import ResearchConsumer

websocket_urlpatterns = [
    path("ws/research/<int:thread_id>/", ResearchConsumer.as_asgi()),
]
