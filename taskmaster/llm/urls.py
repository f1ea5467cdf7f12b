from django.urls import path

from taskmaster.llm import views

app_name = "llm"
urlpatterns = [
    path("playground/", views.playground, name="playground"),
    path("playground/feedback/<uuid:call_id>/", views.playground_feedback, name="playground_feedback"),
]
