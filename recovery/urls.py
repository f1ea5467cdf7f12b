from django.urls import path

from recovery import views

app_name = "recovery"
urlpatterns = [
    path("", views.index, name="index"),
    path("incidents/<int:pk>/", views.incident, name="incident"),
    path("incidents/<int:pk>/resolve/", views.incident_resolve, name="incident_resolve"),
    path("rollbacks/", views.rollbacks, name="rollbacks"),
    path("rollbacks/<str:kind>/<int:pk>/", views.rollback, name="rollback"),
]
