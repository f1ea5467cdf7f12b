from django.urls import path

from taskmaster.api import views

app_name = "api"

urlpatterns = [
    path("models", views.models_list, name="models"),
    path("models/<path:model>", views.model_detail, name="model_detail"),
    path("chat/completions", views.chat_completions, name="chat_completions"),
    path("embeddings", views.embeddings, name="embeddings"),
]
