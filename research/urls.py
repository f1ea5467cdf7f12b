# NOTE to the engineer building this app: FIRST read /tmp/brief.md (team conventions, runtime API,
# test fixtures, and which shared files you must not edit; no git commands). Delete this note when done.
from django.urls import path

from research import views

app_name = "research"
urlpatterns = [
    path("", views.index, name="index"),
]
