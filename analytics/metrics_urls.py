"""/metrics lives at the site root (where Prometheus expects it), outside the analytics/ prefix."""

from django.urls import path

from analytics import views

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
